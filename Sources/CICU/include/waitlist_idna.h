// IDNA UTS #46 for the domains of email addresses, through the system ICU.
//
// Only plain C types cross this header: Foundation brings an ICU of its own into Swift, and ICU's
// own headers seen from Swift would clash with it. idna.c includes them and does the work.
#ifndef WAITLIST_IDNA_H
#define WAITLIST_IDNA_H

#include <stdint.h>

/// UTS #46 ToASCII (`to_unicode` 0) or ToUnicode (`to_unicode` 1) of a UTF-8 domain name, with ICU's
/// non-transitional processing and the STD3, Bidi and ContextJ rules, into `destination`.
///
/// Returns the length of the result (which may exceed `capacity`: then nothing usable was
/// written), or -1 when ICU failed or found an error in the name (a disallowed character, a bad
/// `xn--` label, an empty or too long label, …).
int32_t waitlist_idna_convert(int to_unicode, const char *name, int32_t length, char *destination, int32_t capacity);

#endif
