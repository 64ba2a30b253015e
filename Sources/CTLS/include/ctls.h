// The few OpenSSL 3 calls the TLS target makes, as plain functions: several are macros Swift
// cannot call (SSL_set_tlsext_host_name, SSL_CTX_set_min_proto_version, SSL_CTX_set_mode).
// OpenSSL's own headers stay out of Swift's sight: its types are opaque pointers here.
#ifndef CTLS_H
#define CTLS_H

#include <stddef.h>

typedef struct ssl_ctx_st ctls_context;
typedef struct ssl_st ctls_connection;

// What a failed call left behind, taken on the calling thread right after the call.
typedef struct {
    // errno of a failed read(2)/write(2) in OpenSSL's socket BIO (CTLS_SYSCALL).
    int sys_errno;
    // SSL_get_verify_result(3): X509_V_OK (0) unless the peer's chain or name did not verify.
    long verify_result;
    // X509_verify_cert_error_string(3) of verify_result, else ERR_error_string_n(3) of the
    // first queued error; empty when OpenSSL queued none.
    char message[256];
} ctls_failure;

// What ctls_connect, ctls_read and ctls_write return when they moved nothing (all negative).
extern const int CTLS_WANT_READ;   // SSL_ERROR_WANT_READ: poll(2) for POLLIN, then call again
extern const int CTLS_WANT_WRITE;  // SSL_ERROR_WANT_WRITE: poll(2) for POLLOUT, then call again
extern const int CTLS_CLOSED;      // SSL_ERROR_ZERO_RETURN: the peer's close_notify
extern const int CTLS_EOF;         // TCP end of file without close_notify
extern const int CTLS_SYSCALL;     // the socket failed: failure->sys_errno
extern const int CTLS_FAILED;      // TLS failed: failure->message (and verify_result)

// A client context: TLS 1.2 at least, SSL_VERIFY_PEER, ALPN "http/1.1", partial writes; trusting
// the PEM bundle at ca_file, or the system's store (SSL_CTX_set_default_verify_paths) when NULL.
// NULL on failure, with failure->message set.
ctls_context *ctls_context_new(const char *ca_file, ctls_failure *failure);
void ctls_context_free(ctls_context *context);

// A client connection over the connected socket fd (never closed by OpenSSL), checking the
// peer's certificate for server_name: a DNS name (also sent as SNI) or an IPv4/IPv6 literal
// (no SNI, RFC 6066 §3). NULL on failure, with failure->message set.
ctls_connection *ctls_connection_new(ctls_context *context, int fd, const char *server_name, ctls_failure *failure);
void ctls_connection_free(ctls_connection *connection);

// SSL_connect(3): 1 once the handshake is done, else a CTLS_* code.
int ctls_connect(ctls_connection *connection, ctls_failure *failure);
// SSL_read(3): the byte count (> 0), else a CTLS_* code.
int ctls_read(ctls_connection *connection, void *buffer, int size, ctls_failure *failure);
// SSL_write(3) with partial writes: the byte count taken (> 0), else a CTLS_* code.
int ctls_write(ctls_connection *connection, const void *bytes, int size, ctls_failure *failure);
// SSL_shutdown(3) once: sends close_notify if the socket takes it now; errors are dropped.
void ctls_shutdown(ctls_connection *connection);

// SSL_pending(3): decrypted bytes OpenSSL holds that SSL_read returns without the socket.
int ctls_pending(const ctls_connection *connection);
// The ALPN protocol the server chose, copied NUL-terminated into out; 0 when none or too long.
int ctls_alpn_selected(const ctls_connection *connection, char *out, size_t size);
// SSL_get_version(3): "TLSv1.3", "TLSv1.2".
const char *ctls_version(const ctls_connection *connection);

#endif
