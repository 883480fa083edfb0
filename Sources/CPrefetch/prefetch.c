// SwiftPM builds a C target from at least one source file; everything here is in include/prefetch.h.
#include "prefetch.h"
