// libpng 1.6 (Debian: libpng-dev; macOS: brew install libpng).
#include <png.h>
