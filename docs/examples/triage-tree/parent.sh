# What runs inside the parent's microVM (as /bin/sh -c "$(cat parent.sh)"). It writes its
# sub-agents' policy and script itself: each sub-agent is a fresh microVM that sees nothing of
# its parent's files. Evidence goes in through a bucket, findings come back through the bucket
# and the findings door; the refusals at the end are on purpose.
cat > /tmp/analyst.yaml <<'EOF'
version: 1
agent: analyst
tools:
  exec:
    - program: /bin/sh
      binary: /bin/busybox
      args: any
      env: [PATH, HOME]
  buckets:
    - namespace: cases/**
      operations: [put, get]
  doors:
    - door: findings
      send: [triage]
      log_content: true
limits: { cycles: 20, wall_time: 5m, output_bytes: 4MiB }
resources: { vcpus: 1, memory_mib: 256 }
EOF
sed 's/vcpus: 1,/vcpus: 4,/' /tmp/analyst.yaml > /tmp/greedy.yaml
sed 's/memory_mib: 256/memory_mib: 512/' /tmp/analyst.yaml > /tmp/big.yaml
sed 's/cycles: 20,/cycles: 95,/' /tmp/analyst.yaml > /tmp/hungry.yaml
cat > /tmp/analyse.sh <<'EOF'
me=$(hands whoami | head -n 1); file=${me#triage.}.log
hands bucket get cases/1/evidence $file > /tmp/evidence || exit 3
n=$(grep -c -e 'Failed password' -e ' 403' /tmp/evidence)
echo "$file: $n suspicious of $(wc -l < /tmp/evidence) lines" | hands bucket put cases/1/findings $file || exit 4
hands door send findings triage "$file done" || exit 5
hands door send exfil triage "stolen"; echo "exfil door: exit $?"
EOF
printf 'Failed password for root from 10.0.0.1\nAccepted publickey for bob\nFailed password for root from 10.0.0.9\n' \
  | hands bucket put cases/1/evidence auth.log || exit 10
printf 'GET /admin 403\nGET /index.html 200\nGET /admin 403\nGET /login 200\nGET /admin 403\n' \
  | hands bucket put cases/1/evidence web.log || exit 11
for name in auth web; do
  hands spawn --name $name --policy /tmp/analyst.yaml -- /bin/sh -c "$(cat /tmp/analyse.sh)" || exit 12
  hands wait $name || exit 13
  hands door recv findings --from --timeout 60 || exit 14
  echo
done
hands spawn --name greedy --policy /tmp/greedy.yaml -- /bin/true 2> /tmp/greedy.err; echo "greedy: exit $? $(cat /tmp/greedy.err)"
hands spawn --name big --policy /tmp/big.yaml --memory 512 -- /bin/true 2> /tmp/big.err; echo "big: exit $? $(cat /tmp/big.err)"
hands spawn --name hungry --policy /tmp/hungry.yaml -- /bin/true 2> /tmp/hungry.err; echo "hungry: exit $? $(cat /tmp/hungry.err)"
echo "summary:"
for key in $(hands bucket query cases/1/findings | cut -f1); do hands bucket get cases/1/findings $key; done
