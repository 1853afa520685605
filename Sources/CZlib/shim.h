// zlib (Debian: zlib1g-dev; macOS: part of the SDK).
#include <zlib.h>

// inflateInit2 is a macro; Swift sees this function instead.
static inline int anysize_inflateInit2(z_streamp stream, int windowBits) {
    return inflateInit2(stream, windowBits);
}
