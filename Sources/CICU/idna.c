#include "waitlist_idna.h"

#include <pthread.h>
#include <unicode/uidna.h>

static UIDNA *processing = NULL;
static pthread_once_t opened = PTHREAD_ONCE_INIT;

// ICU's UTS #46 object is immutable once opened and safe to share between threads.
static void open_processing(void) {
    UErrorCode status = U_ZERO_ERROR;
    UIDNA *idna = uidna_openUTS46(
        UIDNA_USE_STD3_RULES | UIDNA_CHECK_BIDI | UIDNA_CHECK_CONTEXTJ | UIDNA_CHECK_CONTEXTO | UIDNA_NONTRANSITIONAL_TO_ASCII
            | UIDNA_NONTRANSITIONAL_TO_UNICODE,
        &status);
    processing = U_FAILURE(status) ? NULL : idna;
}

int32_t waitlist_idna_convert(int to_unicode, const char *name, int32_t length, char *destination, int32_t capacity) {
    pthread_once(&opened, open_processing);
    if (processing == NULL) {
        return -1;
    }
    UIDNAInfo info = UIDNA_INFO_INITIALIZER;
    UErrorCode status = U_ZERO_ERROR;
    int32_t needed = to_unicode
        ? uidna_nameToUnicodeUTF8(processing, name, length, destination, capacity, &info, &status)
        : uidna_nameToASCII_UTF8(processing, name, length, destination, capacity, &info, &status);
    if (U_FAILURE(status) || info.errors != 0) {
        return -1;
    }
    return needed;
}
