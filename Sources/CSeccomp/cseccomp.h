// CSeccomp: libseccomp's API (<seccomp.h>, Debian's libseccomp-dev 2.5.x). Only the Seccomp
// target imports it; the variadic seccomp_rule_add is not used from Swift (seccomp_rule_add_array is).
#ifndef CSECCOMP_H
#define CSECCOMP_H
#include <seccomp.h>
#endif
