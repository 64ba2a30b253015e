// CZlib: zlib's inflate (RFC 1950-1952) from Debian's zlib1g-dev, for gzip-compressed image
// layers. Only the Images target imports it.
#include <zlib.h>
