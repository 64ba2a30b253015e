// CCapNG: libcap-ng (capng_clear(3), capng_change_id(3)) from Debian's libcap-ng-dev.
// Only the Jail target imports it.
#include <cap-ng.h>
