/*
 * fuzz_charopts.c: libFuzzer target for the options of a character
 * creation (charopts.c) and media inputs given as text (mediain.c): the
 * input as a JSON object of options, and as a media value of each kind,
 * whose decoded bytes then go to the sniffer.
 */
#include "common/crypto.h"
#include "common/jsonlimit.h"
#include "worker/charopts.h"
#include "worker/mediain.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
media(const char *text, s2a_mediain_kind_t kind)
{
    s2a_media_in_t m;
    unsigned char *bytes;
    size_t n = 0;

    if (s2a_mediain_text(text, kind,
                         S2A_MEDIAIN_F_URL_LIMIT | S2A_MEDIAIN_F_TYPE, &m)
        != S2A_MEDIAIN_OK)
    {
        return;
    }
    if ((m.url == NULL) == (m.base64 == NULL)) {
        abort(); /* exactly one of them */
    }
    if (m.base64 != NULL) {
        bytes = s2a_base64_decode(m.base64, strlen(m.base64), &n);
        if (bytes == NULL) {
            abort(); /* it decoded once already */
        }
        (void) s2a_mediain_sniff(bytes, n, kind, NULL);
        free(bytes);
    }
}

/* The entry point libFuzzer calls with each input. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const s2a_json_limits_t lim = { S2A_JSON_MAX_VALUES,
                                           S2A_JSON_MAX_DEPTH, SIZE_MAX,
                                           S2A_JSON_MAX_KEY };
    s2a_charopts_t o;
    char err[512], param[64], why[160], *text;
    json_t *obj, *back;

    (void) s2a_mediain_sniff(data, size, S2A_MEDIAIN_VIDEO, NULL);
    (void) s2a_mediain_sniff(data, size, S2A_MEDIAIN_IMAGE, NULL);
    text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    media(text, S2A_MEDIAIN_VIDEO);
    media(text, S2A_MEDIAIN_IMAGE);
    free(text);
    if (s2a_json_limits_check((const char *) data, size, &lim, why, sizeof(why))
        != S2A_OK)
    {
        return 0;
    }
    obj = json_loadb((const char *) data, size, JSON_REJECT_DUPLICATES, NULL);
    if (obj == NULL) {
        return 0;
    }
    if (s2a_charopts_parse(obj, "character_options.", &o, err, sizeof(err),
                           param, sizeof(param))
        == S2A_OK)
    {
        /* What a task row keeps reads back to the same options. */
        back = s2a_charopts_json(&o);
        if (back == NULL
            || s2a_charopts_parse(back, "", &o, err, sizeof(err), param,
                                  sizeof(param))
                != S2A_OK)
        {
            abort();
        }
        json_decref(back);
    } else if (param[0] == '\0' || err[0] == '\0') {
        abort(); /* every refusal names a parameter and says why */
    }
    json_decref(obj);
    return 0;
}
