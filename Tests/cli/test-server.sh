#!/usr/bin/env bash
# momin-test-server, the loopback servers of the egress and Brain tests (Tests/Servers), as the
# tests use it: `http` serves a file, echoes a body sent with Content-Length and one sent
# chunked, streams a big body of the documented bytes, waits on /slow, refuses a header
# section over 64 KiB; `static` serves a package index's files byte for byte, a directory's
# index.html, a 301 to a directory's `/` form, 404 outside its root, and logs each request;
# `openai` checks the key, answers a scripted tool call, streams with a
# usage chunk before [DONE], answers a failed `expect` with 400 and logs what arrived.
#
#   Tests/cli/test-server.sh PATH/TO/momin-test-server
#
# Builds nothing (cd Tests/Servers && swift build -c release --static-swift-stdlib). Needs
# curl; every server listens on 127.0.0.1 on a port the kernel picks.
prefix=test-server
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
plan 20
server=$(absolute "${1:?usage: test-server.sh PATH/TO/momin-test-server}")
command -v curl >/dev/null || { fail "setup" "curl is missing"; finish; }

pids=()
stop_servers() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
}
trap 'status=$?; stop_servers; (exit $status); on_exit' EXIT

# start NAME ARGS...: starts a server with --ready-file and waits up to 10 s for it; sets $port.
# (Not in a command substitution: the server's pid must reach this shell's $pids.)
start() {
  local name=$1 ready=$work/$1.ready i; shift
  "$server" "$@" --listen 127.0.0.1:0 --ready-file "$ready" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  for ((i = 0; i < 200; i++)); do
    [ -s "$ready" ] && { port=$(cat "$ready"); return 0; }
    sleep 0.05
  done
  return 1
}

# --- http ---
mkdir -p "$work/root/sub"
printf 'hello from the root\n' > "$work/root/sub/hello.txt"
printf 'outside\n' > "$work/secret.txt"
if ! start http http --root "$work/root"; then
  fail "setup" "the http server did not write its ready file: $(head -c 300 "$work/http.err")"; finish
fi
base=http://127.0.0.1:$port

out=$(curl -sS "$base/sub/hello.txt" 2>&1)
check "http: GET of a file under --root" $([ "$out" = "hello from the root" ] && echo 0 || echo 1) "got: $out"

out=$(curl -sS --path-as-is -o /dev/null -o /dev/null -w '%{http_code} ' "$base/../secret.txt" "$base/sub/%2e%2e/../secret.txt" 2>&1)
check "http: no escape from --root (.. and %2e%2e are 404)" $([ "$out" = "404 404 " ] && echo 0 || echo 1) "got: $out"

head -c 100000 /dev/urandom > "$work/body.bin"
want=$(sha256sum < "$work/body.bin" | cut -d' ' -f1)
out=$(curl -sS -X POST -H 'X-Probe: one' -H 'Proxy-Authorization: Basic c2VjcmV0' --data-binary @"$work/body.bin" \
  "$base/echo/path?q=1" 2>&1)
grep -qF '"method":"POST","target":"/echo/path?q=1","path":"/echo/path","query":"q=1"' <<<"$out" \
  && grep -qF '"body_length":100000,"body_sha256":"'"$want"'","body_framing":"content-length"' <<<"$out" \
  && grep -qF '["X-Probe","one"]' <<<"$out" && grep -qF '["Proxy-Authorization","Basic c2VjcmV0"]' <<<"$out"
check "http: /echo names the method, target, headers and the body's length and sha256" $? "got: ${out:0:400}"

out=$(curl -sS -H 'Transfer-Encoding: chunked' --data-binary @"$work/body.bin" "$base/echo" 2>&1)
grep -qF '"body_length":100000,"body_sha256":"'"$want"'","body_framing":"chunked"' <<<"$out"
check "http: a chunked upload is decoded (RFC 9112 §7.1)" $? "got: ${out:0:400}"

# Byte i of /big is i % 251: bytes 250, 251 and 502 are 250, 0 and 0.
curl -sS "$base/big?bytes=10000000" -o "$work/big.bin" 2>"$work/big.err"
size=$(wc -c < "$work/big.bin")
marks=$(od -An -tu1 -j250 -N2 "$work/big.bin" | tr -s ' ')$(od -An -tu1 -j502 -N1 "$work/big.bin" | tr -s ' ')
check "http: /big?bytes=10000000 sends exactly that many of the documented bytes" \
  $([ "$size" -eq 10000000 ] && [ "$marks" = " 250 0 0" ] && echo 0 || echo 1) "size $size, bytes 250-251 and 502: '$marks' $(head -c 200 "$work/big.err")"

start_ms=$(date +%s%3N)
out=$(curl -sS "$base/slow?ms=300" 2>&1)
elapsed=$(( $(date +%s%3N) - start_ms ))
check "http: /slow?ms=300 answers after at least 300 ms" \
  $([ "$out" = "slept 300 ms" ] && [ "$elapsed" -ge 300 ] && echo 0 || echo 1) "after $elapsed ms: $out"

out=$(curl -sS -o /dev/null -w '%{http_code}' -H "X-Big: $(head -c 70000 /dev/zero | tr '\0' a)" "$base/echo" 2>&1)
check "http: a header section over 64 KiB is 431" $([ "$out" = 431 ] && echo 0 || echo 1) "got: $out"

# --- static ---
# A package index's shape (PEP 503): a project page under simple/, a wheel under files/.
whl=momin_pkg-1.0-py3-none-any.whl
mkdir -p "$work/index/simple/momin-pkg" "$work/index/files" "$work/index/empty"
head -c 70000 /dev/urandom > "$work/index/files/$whl"
printf '<a href="momin-pkg/">momin-pkg</a>\n' > "$work/index/simple/index.html"
printf '<a href="../../files/%s">%s</a>\n' "$whl" "$whl" > "$work/index/simple/momin-pkg/index.html"
ln -s "$work/secret.txt" "$work/index/files/out.txt"
if ! start static static --root "$work/index" --log "$work/static.log"; then
  fail "setup" "the static server did not write its ready file: $(head -c 300 "$work/static.err")"; finish
fi
sbase=http://127.0.0.1:$port

curl -sS -D "$work/get.head" -o "$work/got.whl" "$sbase/files/$whl" 2>"$work/get.err"
curl -sS -I "$sbase/files/momin%5Fpkg-1.0-py3-none-any.whl" > "$work/head.head" 2>>"$work/get.err"
cmp -s "$work/got.whl" "$work/index/files/$whl" && grep -qx $'Content-Length: 70000\r' "$work/get.head" \
  && grep -qx $'Content-Type: application/octet-stream\r' "$work/get.head" \
  && grep -qx $'HTTP/1.1 200 OK\r' "$work/head.head" && grep -qx $'Content-Length: 70000\r' "$work/head.head"
check "static: a file byte for byte with its length; HEAD of its percent-escaped name the same head" $? \
  "$(tr -d '\r' < "$work/get.head" | tr '\n' ' '; tr -d '\r' < "$work/head.head" | tr '\n' ' '; head -c 200 "$work/get.err")"

out=$(curl -sS -w ' %{http_code} %{content_type}' "$sbase/simple/momin-pkg/" 2>&1)
out2=$(curl -sS -w ' %{http_code}' "$sbase/simple/" 2>&1)
[ "$out" = "<a href=\"../../files/$whl\">$whl</a>"$'\n'" 200 text/html; charset=utf-8" ] \
  && [ "$out2" = '<a href="momin-pkg/">momin-pkg</a>'$'\n'" 200" ]
check "static: a path ending in / answers the directory's index.html as text/html" $? "got: $out; $out2"

out=$(curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' "$sbase/simple/momin-pkg" 2>&1)
out2=$(curl -sSL "$sbase/simple/momin-pkg" 2>&1)
[ "$out" = "301 $sbase/simple/momin-pkg/" ] && [ "$out2" = "<a href=\"../../files/$whl\">$whl</a>" ]
check "static: a directory named without its / is a 301 to the / form, which serves its index" $? "got: $out; followed: $out2"

out=$(curl -sS --path-as-is -o /dev/null -o /dev/null -o /dev/null -w '%{http_code} ' \
  "$sbase/../secret.txt" "$sbase/files/%2e%2e/../secret.txt" "$sbase/files/out.txt" 2>&1)
check "static: no escape from --root (.., %2e%2e and a symlink out are 404)" $([ "$out" = "404 404 404 " ] && echo 0 || echo 1) "got: $out"

out=$(curl -sS -o /dev/null -o /dev/null -o /dev/null -w '%{http_code} ' \
  "$sbase/files/missing.whl" "$sbase/empty/" "$sbase/files/$whl/" 2>&1)
check "static: a missing file, a directory without index.html and a file named as a directory are 404" \
  $([ "$out" = "404 404 404 " ] && echo 0 || echo 1) "got: $out"

# Thirteen requests so far; each line is appended once its answer is written.
for ((i = 0; i < 40; i++)); do [ "$(wc -l < "$work/static.log")" -ge 13 ] && break; sleep 0.05; done
log=$(cat "$work/static.log" 2>/dev/null)
[ "$(wc -l <<<"$log")" -eq 13 ] \
  && grep -qx '{"method":"GET","path":"/files/'"$whl"'","status":200,"bytes":70000}' <<<"$log" \
  && grep -qx '{"method":"HEAD","path":"/files/momin%5Fpkg-1.0-py3-none-any.whl","status":200,"bytes":0}' <<<"$log" \
  && grep -qx '{"method":"GET","path":"/simple/momin-pkg/","status":200,"bytes":'"$(wc -c < "$work/index/simple/momin-pkg/index.html")"'}' <<<"$log" \
  && [ "$(grep -c '^{"method":"GET","path":"/simple/momin-pkg","status":301,"bytes":[1-9][0-9]*}$' <<<"$log")" -eq 2 ] \
  && grep -qx '{"method":"GET","path":"/../secret.txt","status":404,"bytes":[1-9][0-9]*}' <<<"$log" \
  && grep -qx '{"method":"GET","path":"/files/out.txt","status":404,"bytes":[1-9][0-9]*}' <<<"$log"
check "static: --log has a line per request: method, path as sent, status, body bytes" $? "log: ${log:0:600}"

# --- openai ---
cat > "$work/script.json" <<'EOF'
{
  "models": ["momin-test"],
  "turns": [
    { "expect": { "model": "momin-test", "last_role": "user", "tool_names": ["exec"] },
      "tool_calls": [ { "id": "call_1", "name": "exec", "arguments": { "argv": ["ls", "/"] } } ],
      "usage": { "prompt_tokens": 12, "completion_tokens": 7 } },
    { "expect": { "last_role": "tool", "tool_call_id": "call_1", "last_content_contains": "README" },
      "content": "There is a README.", "chunks": 4,
      "usage": { "prompt_tokens": 30, "completion_tokens": 5 } },
    { "expect": { "last_role": "tool" }, "content": "not sent" }
  ]
}
EOF
if ! start openai openai --script "$work/script.json" --key sk-test-key --log "$work/requests.log"; then
  fail "setup" "the openai server did not write its ready file: $(head -c 300 "$work/openai.err")"; finish
fi
api=http://127.0.0.1:$port/v1
user='{"role":"user","content":"list /"}'

out=$(curl -sS -w ' %{http_code}' -H 'Authorization: Bearer wrong' -d "{\"model\":\"momin-test\",\"messages\":[$user]}" \
  "$api/chat/completions" 2>&1)
out2=$(curl -sS -w ' %{http_code}' "$api/models" 2>&1)
[[ $out == *'"code":"invalid_api_key"'*' 401' ]] && [[ $out2 == *' 401' ]]
check "openai: a wrong or missing key is 401 (and uses no turn)" $? "wrong key: $out; none: $out2"

out=$(curl -sS -H 'Authorization: Bearer sk-test-key' -H 'Content-Type: application/json' -d "{\"model\":\"momin-test\",
  \"messages\":[$user],\"max_tokens\":64,\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"exec\"}}]}" \
  "$api/chat/completions" 2>&1)
grep -qF '"object":"chat.completion"' <<<"$out" \
  && grep -qF '"tool_calls":[{"id":"call_1","type":"function","function":{"name":"exec","arguments":"{\"argv\":[\"ls\",\"/\"]}"}}]' <<<"$out" \
  && grep -qF '"finish_reason":"tool_calls"' <<<"$out" \
  && grep -qF '"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}' <<<"$out"
check "openai: a non-stream reply with tool_calls and usage" $? "got: ${out:0:500}"

tool='{"role":"tool","tool_call_id":"call_1","content":"README\nbin"}'
curl -sS -N -H 'Authorization: Bearer sk-test-key' -d "{\"model\":\"momin-test\",\"stream\":true,
  \"stream_options\":{\"include_usage\":true},\"max_completion_tokens\":32,\"messages\":[$user,$tool]}" \
  "$api/chat/completions" > "$work/stream.txt" 2>&1
events=$(grep -c '^data: ' "$work/stream.txt")
text=$(grep -o '"delta":{"content":"[^"]*"' "$work/stream.txt" | sed 's/.*"content":"//; s/"$//' | tr -d '\n')
last=$(grep '^data: ' "$work/stream.txt" | tail -1)
usage=$(grep '^data: ' "$work/stream.txt" | tail -2 | head -1)
[ "$last" = "data: [DONE]" ] && [ "$text" = "There is a README." ] && [ "$events" -eq 8 ] \
  && [[ $usage == *'"choices":[],"usage":{"prompt_tokens":30,"completion_tokens":5,"total_tokens":35}}' ]] \
  && grep -qF '"delta":{"role":"assistant"' "$work/stream.txt" && grep -qF '"finish_reason":"stop"' "$work/stream.txt"
check "openai: a stream with include_usage: role, 4 content deltas, finish, a usage chunk, [DONE] last" $? \
  "$events events, text '$text', last '$last': $(head -c 400 "$work/stream.txt")"

out=$(curl -sS -w ' %{http_code}' -H 'Authorization: Bearer sk-test-key' -d "{\"model\":\"momin-test\",\"messages\":[$user]}" \
  "$api/chat/completions" 2>&1)
[[ $out == *'"code":"expectation_failed"'*' 400' ]] && [[ $out == *'last_role: expected \"tool\", got \"user\"'* ]]
check "openai: a failed expect is 400 expectation_failed naming what differed" $? "got: $out"

log=$(cat "$work/requests.log" 2>/dev/null)
[ "$(wc -l <<<"$log")" -eq 5 ] \
  && grep -qF '"authorization":true,"model":"momin-test","messages":1,"max_tokens":64,"max_completion_tokens":null,"stream":false' <<<"$log" \
  && grep -qF '"messages":2,"max_tokens":null,"max_completion_tokens":32,"stream":true,"include_usage":true' <<<"$log" \
  && grep -qF '"expect_failed":"last_role: expected \"tool\", got \"user\"","status":400' <<<"$log" \
  && ! grep -qF 'sk-test-key' <<<"$log"
check "openai: --log has a line per request, without the key" $? "log: ${log:0:500}"

out=$(curl -sS -w ' %{http_code}' -H 'Authorization: Bearer sk-test-key' -d '{"model":"momin-test","messages":[' \
  "$api/chat/completions" 2>&1)
[[ $out == *'"type":"invalid_request_error"'*' 400' ]]
check "openai: a body that is not JSON is 400" $? "got: $out"

printf '{"turns":[{"content":"x","usage":{"prompt_tokns":1}}]}' > "$work/typo.json"
out=$("$server" openai --script "$work/typo.json" 2>&1); status=$?
[ "$status" -eq 2 ] && grep -qF 'turns[0].usage: unknown key "prompt_tokns"' <<<"$out"
check "openai: a script with an unknown key is refused (status 2)" $? "status $status: $out"

stop_servers; pids=()
finish
