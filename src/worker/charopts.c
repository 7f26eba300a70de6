/*
 * charopts.c: checking and copying the options of a character creation.
 */
#include "worker/charopts.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAIL(name, ...) \
    do { \
        snprintf(parambuf, paramlen, "%s%s", prefix, (name)); \
        snprintf(err, errlen, __VA_ARGS__); \
        return S2A_ERROR; \
    } while (0)

bool
s2a_charopts_username_ok(const char *name)
{
    size_t i, n = strlen(name);

    if (n < 3 || n > S2A_CHAROPTS_USER_MAX) {
        return false;
    }
    for (i = 0; i < n; i++) {
        char c = name[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_'))) {
            return false;
        }
    }
    return true;
}

/*
 * One number of a timestamps value: digits with at most one fraction,
 * blanks around. Returns the position after it (and the value in *v), or
 * NULL.
 */
static const char *
read_seconds(const char *p, double *v)
{
    const char *start;
    int digits = 0, frac = 0;

    while (*p == ' ') {
        p++;
    }
    start = p;
    while (isdigit((unsigned char) *p)) {
        p++;
        digits++;
    }
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char) *p)) {
            p++;
            frac++;
        }
        if (frac == 0) {
            return NULL;
        }
    }
    if (digits == 0 || digits > 6) {
        return NULL;
    }
    *v = strtod(start, NULL);
    while (*p == ' ') {
        p++;
    }
    return p;
}

/* Counts UTF-8 characters; -1 for a control character or a bad byte. */
static long
utf8_chars(const char *s)
{
    const unsigned char *p = (const unsigned char *) s;
    long n = 0;
    int more;

    while (*p != '\0') {
        if (*p < 0x20 || *p == 0x7f) {
            return -1;
        }
        more = *p < 0x80          ? 0
            : (*p & 0xe0) == 0xc0 ? 1
            : (*p & 0xf0) == 0xe0 ? 2
            : (*p & 0xf8) == 0xf0 ? 3
                                  : -1;
        if (more < 0) {
            return -1;
        }
        p++;
        while (more-- > 0) {
            if ((*p & 0xc0) != 0x80) {
                return -1;
            }
            p++;
        }
        n++;
    }
    return n;
}

/* A string member, or NULL when absent or null; *bad when not a string. */
static const char *
str_member(json_t *obj, const char *name, bool *bad)
{
    json_t *v = json_object_get(obj, name);

    *bad = v != NULL && !json_is_null(v) && !json_is_string(v);
    if (v == NULL || !json_is_string(v)) {
        return NULL;
    }
    /* An embedded NUL would cut the value short upstream. */
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        *bad = true;
        return NULL;
    }
    return json_string_value(v);
}

int
s2a_charopts_parse(json_t *obj, const char *prefix, s2a_charopts_t *out,
                   char *err, size_t errlen, char *parambuf, size_t paramlen)
{
    static const char *const known[] = { "timestamps",
                                         "username",
                                         "display_name",
                                         "instruction_set",
                                         "safety_instruction_set",
                                         "keep" };
    const char *key, *s, *p;
    json_t *v;
    double a = 0, b = 0;
    bool bad;
    size_t i;
    long chars;

    memset(out, 0, sizeof(*out));
    snprintf(out->timestamps, sizeof(out->timestamps), "%s",
             S2A_CHAROPTS_TS_DEFAULT);
    parambuf[0] = '\0';
    err[0] = '\0';
    if (obj == NULL || json_is_null(obj)) {
        return S2A_OK;
    }
    if (!json_is_object(obj)) {
        snprintf(parambuf, paramlen, "%.*s", (int) strcspn(prefix, "."),
                 prefix[0] != '\0' ? prefix : "character_options");
        snprintf(err, errlen, "character_options must be an object");
        return S2A_ERROR;
    }
    json_object_foreach (obj, key, v) {
        for (i = 0; i < S2A_NELEMS(known); i++) {
            if (strcmp(key, known[i]) == 0) {
                break;
            }
        }
        if (i == S2A_NELEMS(known)) {
            snprintf(parambuf, paramlen, "%s%.40s", prefix, key);
            snprintf(err, errlen,
                     "%s%.64s is not an option of a character (timestamps, "
                     "username, display_name, instruction_set, "
                     "safety_instruction_set, keep)",
                     prefix, key);
            return S2A_ERROR;
        }
    }
    s = str_member(obj, "timestamps", &bad);
    if (bad) {
        FAIL("timestamps", "timestamps must be a string such as \"0,3\"");
    }
    if (s != NULL) {
        p = strlen(s) < sizeof(out->timestamps) ? read_seconds(s, &a) : NULL;
        p = p != NULL && *p == ',' ? read_seconds(p + 1, &b) : NULL;
        if (p == NULL || *p != '\0') {
            FAIL("timestamps",
                 "timestamps must be \"start,end\" in seconds, such as "
                 "\"0,3\"");
        }
        if (!(a < b) || b - a > S2A_CHAROPTS_SPAN_MAX) {
            FAIL("timestamps",
                 "timestamps must have start < end and end - start at most "
                 "%d seconds",
                 S2A_CHAROPTS_SPAN_MAX);
        }
        snprintf(out->timestamps, sizeof(out->timestamps), "%s", s);
    }
    s = str_member(obj, "username", &bad);
    if (bad) {
        FAIL("username", "username must be a string");
    }
    if (s != NULL && s[0] != '\0') {
        for (p = s; *p != '\0' && !isupper((unsigned char) *p); p++) {
        }
        if (*p != '\0') {
            FAIL("username",
                 "username must be lower case: Sora usernames are 3 to 30 "
                 "of a-z, 0-9, '.' and '_' (try \"%.30s\" in lower case)",
                 s);
        }
        if (!s2a_charopts_username_ok(s)) {
            FAIL("username",
                 "username must be 3 to 30 of a-z, 0-9, '.' and '_', "
                 "starting with a letter or a digit");
        }
        snprintf(out->username, sizeof(out->username), "%s", s);
    }
    s = str_member(obj, "display_name", &bad);
    if (bad) {
        FAIL("display_name", "display_name must be a string");
    }
    if (s != NULL) {
        chars = utf8_chars(s);
        if (chars < 1 || chars > S2A_CHAROPTS_NAME_MAX
            || s[strspn(s, " ")] == '\0') {
            FAIL("display_name",
                 "display_name must be 1 to %d characters of UTF-8 text "
                 "without control characters",
                 S2A_CHAROPTS_NAME_MAX);
        }
        snprintf(out->display_name, sizeof(out->display_name), "%s", s);
    }
    s = str_member(obj, "instruction_set", &bad);
    if (bad || (s != NULL && strlen(s) > S2A_CHAROPTS_INSTR_MAX)) {
        FAIL("instruction_set",
             "instruction_set must be a string of at most %d bytes",
             S2A_CHAROPTS_INSTR_MAX);
    }
    if (s != NULL) {
        snprintf(out->instruction_set, sizeof(out->instruction_set), "%s", s);
    }
    s = str_member(obj, "safety_instruction_set", &bad);
    if (bad || (s != NULL && strlen(s) > S2A_CHAROPTS_INSTR_MAX)) {
        FAIL("safety_instruction_set",
             "safety_instruction_set must be a string of at most %d bytes",
             S2A_CHAROPTS_INSTR_MAX);
    }
    if (s != NULL) {
        snprintf(out->safety_instruction_set,
                 sizeof(out->safety_instruction_set), "%s", s);
    }
    v = json_object_get(obj, "keep");
    if (v != NULL && !json_is_null(v) && !json_is_boolean(v)) {
        FAIL("keep", "keep must be true or false");
    }
    out->keep = json_is_true(v);
    return S2A_OK;
}

json_t *
s2a_charopts_json(const s2a_charopts_t *o)
{
    return json_pack(
        "{s:s, s:s?, s:s?, s:s?, s:s?, s:b}", "timestamps", o->timestamps,
        "username", o->username[0] != '\0' ? o->username : NULL, "display_name",
        o->display_name[0] != '\0' ? o->display_name : NULL, "instruction_set",
        o->instruction_set[0] != '\0' ? o->instruction_set : NULL,
        "safety_instruction_set",
        o->safety_instruction_set[0] != '\0' ? o->safety_instruction_set : NULL,
        "keep", o->keep);
}
