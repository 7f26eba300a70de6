/*
 * characters.c: the characters table in the master (docs/characters.md).
 *
 * One row per Sora character ("cameo") an account of the pool made: the
 * public id clients see (char_<24 hex>), the token it is bound to, Sora's
 * cameo and character ids once known, its username, texts, visibility and
 * state. Workers write rows with character_write (an upsert by public id,
 * answered after the commit with the whole row), read them with
 * characters_list and character_get, remove them with character_delete
 * once Sora forgot them, and ask character_owners which tokens made the
 * characters a prompt mentions (sticky routing, docs/generation.md).
 *
 * Columns are written through one table of their names and kinds: the
 * SQL is built from it, never from a member name, and every value is
 * checked before anything is written.
 */
#include "master/characters.h"
#include "common/log.h"
#include "common/ops.h"
#include "common/util.h"
#include "master/ctlserver.h"
#include "master/orphans.h"
#include "master/state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#define LIST_MAX     1000
#define LIST_DEFAULT 100
#define OFFSET_MAX   1000000
#define SHORT_MAX    256  /* ids and the display name */
#define ERROR_MAX    1024 /* why a character failed */
#define SEARCH_MAX   64

typedef enum {
    COL_TEXT = 0, /* text or null, at most `max` bytes */
    COL_ENUM,     /* one of `set`, never null */
    COL_ID,       /* a positive integer */
    COL_COUNT,    /* a non-negative integer */
    COL_BOOL      /* stored 0 or 1 */
} col_kind_t;

static const struct {
    const char *name;
    col_kind_t kind;
    size_t max;
    const char *const *set;
} columns[] = {
    { "token_id", COL_ID, 0, NULL },
    { "cameo_id", COL_TEXT, SHORT_MAX, NULL },
    { "character_id", COL_TEXT, SHORT_MAX, NULL },
    { "username", COL_TEXT, S2A_CHARACTERS_USERNAME_MAX, NULL },
    { "display_name", COL_TEXT, SHORT_MAX, NULL },
    { "profile_url", COL_TEXT, S2A_CHARACTERS_TEXT_MAX, NULL },
    { "instruction_set", COL_TEXT, S2A_CHARACTERS_TEXT_MAX, NULL },
    { "safety_instruction_set", COL_TEXT, S2A_CHARACTERS_TEXT_MAX, NULL },
    { "visibility", COL_ENUM, 0,
      (const char *const[]){ "public", "private", NULL } },
    { "state", COL_ENUM, 0,
      (const char *const[]){ "processing", "ready", "failed", "deleting",
                             "deleted", NULL } },
    { "temporary", COL_BOOL, 0, NULL },
    { "owner", COL_COUNT, 0, NULL },
    { "job_id", COL_TEXT, SHORT_MAX, NULL },
    { "error", COL_TEXT, ERROR_MAX, NULL },
    { "updated_at", COL_COUNT, 0, NULL },
};

#define ROW_COLUMNS \
    "public_id, token_id, cameo_id, character_id, username, display_name, " \
    "profile_url, instruction_set, safety_instruction_set, visibility, " \
    "state, temporary, owner, job_id, error, created_at, updated_at"

static sqlite3 *
conn(void)
{
    return s2a_db_sqlite(s2a_master.db);
}

/* ---------------------------------------------------------------------
 * Pure parts
 */

bool
s2a_characters_public_id_ok(const char *s)
{
    size_t i;

    if (s == NULL || strncmp(s, "char_", 5) != 0 || strlen(s) != 29) {
        return false;
    }
    for (i = 5; i < 29; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

static int
column_of(const char *name)
{
    size_t i;

    for (i = 0; i < S2A_NELEMS(columns); i++) {
        if (strcmp(columns[i].name, name) == 0) {
            return (int) i;
        }
    }
    return -1;
}

static bool
in_set(const char *const *set, const char *s)
{
    for (; *set != NULL; set++) {
        if (strcmp(*set, s) == 0) {
            return true;
        }
    }
    return false;
}

/* "<name> must be one of a, b, c" into `err`. */
static void
set_message(char *err, size_t errlen, const char *name, const char *const *set)
{
    size_t n = (size_t) snprintf(err, errlen, "%s must be one of", name);

    for (; *set != NULL && n < errlen; set++) {
        n += (size_t) snprintf(err + n, errlen - n, " %s%s", *set,
                               set[1] != NULL ? "," : "");
    }
}

int
s2a_characters_check(json_t *fields, bool insert, char *err, size_t errlen)
{
    const char *name;
    json_t *v;
    int c;

    if (!json_is_object(fields)) {
        snprintf(err, errlen, "fields must be an object");
        return S2A_ERROR;
    }
    json_object_foreach (fields, name, v) {
        c = column_of(name);
        if (c < 0) {
            snprintf(err, errlen, "unknown field \"%.40s\"", name);
            return S2A_ERROR;
        }
        switch (columns[c].kind) {
        case COL_TEXT:
            if (!json_is_null(v)
                && (!json_is_string(v)
                    || json_string_length(v) > columns[c].max))
            {
                snprintf(err, errlen,
                         "%s must be a string of at most %zu bytes or null",
                         name, columns[c].max);
                return S2A_ERROR;
            }
            break;
        case COL_ENUM:
            if (!json_is_string(v)
                || !in_set(columns[c].set, json_string_value(v))) {
                set_message(err, errlen, name, columns[c].set);
                return S2A_ERROR;
            }
            break;
        case COL_ID:
            if (!json_is_integer(v) || json_integer_value(v) <= 0) {
                snprintf(err, errlen, "%s must be a positive integer", name);
                return S2A_ERROR;
            }
            break;
        case COL_COUNT:
            if (!json_is_integer(v) || json_integer_value(v) < 0) {
                snprintf(err, errlen, "%s must be a non-negative integer",
                         name);
                return S2A_ERROR;
            }
            break;
        case COL_BOOL:
            if (!json_is_boolean(v)) {
                snprintf(err, errlen, "%s must be a boolean", name);
                return S2A_ERROR;
            }
            break;
        }
    }
    if (insert && json_object_get(fields, "token_id") == NULL) {
        snprintf(err, errlen, "token_id is required for a new character");
        return S2A_ERROR;
    }
    return S2A_OK;
}

/* ---------------------------------------------------------------------
 * Rows
 */

/* The row `st` stands on (ROW_COLUMNS) as the contract's JSON. */
static json_t *
row_json(sqlite3_stmt *st)
{
    return json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b, s:o, "
        "s:o, s:o, s:o, s:o}",
        "id", s2a_db_col_text(st, 0), "token_id", s2a_db_col_int(st, 1),
        "cameo_id", s2a_db_col_text(st, 2), "character_id",
        s2a_db_col_text(st, 3), "username", s2a_db_col_text(st, 4),
        "display_name", s2a_db_col_text(st, 5), "profile_url",
        s2a_db_col_text(st, 6), "instruction_set", s2a_db_col_text(st, 7),
        "safety_instruction_set", s2a_db_col_text(st, 8), "visibility",
        s2a_db_col_text(st, 9), "state", s2a_db_col_text(st, 10), "temporary",
        sqlite3_column_int(st, 11) != 0, "owner", s2a_db_col_int(st, 12),
        "job_id", s2a_db_col_text(st, 13), "error", s2a_db_col_text(st, 14),
        "created_at", s2a_db_col_int(st, 15), "updated_at",
        s2a_db_col_int(st, 16));
}

/* The row of `public_id`, or NULL (none, or the read failed). */
static json_t *
row_get(const char *public_id)
{
    sqlite3_stmt *st;
    json_t *row = NULL;

    if (sqlite3_prepare_v2(conn(),
                           "SELECT " ROW_COLUMNS
                           " FROM characters WHERE public_id = ?1",
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        return NULL;
    }
    sqlite3_bind_text(st, 1, public_id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        row = row_json(st);
    }
    sqlite3_finalize(st);
    return row;
}

/* Binds member `v` of column `c` to parameter `i`. */
static void
bind_value(sqlite3_stmt *st, int i, int c, json_t *v)
{
    switch (columns[c].kind) {
    case COL_TEXT:
    case COL_ENUM:
        if (json_is_string(v)) {
            sqlite3_bind_text(st, i, json_string_value(v),
                              (int) json_string_length(v), SQLITE_STATIC);
        } else {
            sqlite3_bind_null(st, i);
        }
        break;
    case COL_BOOL: sqlite3_bind_int(st, i, json_is_true(v)); break;
    case COL_ID:
    case COL_COUNT: sqlite3_bind_int64(st, i, json_integer_value(v)); break;
    }
}

static bool
row_exists(const char *public_id)
{
    sqlite3_stmt *st;
    bool found = false;

    if (sqlite3_prepare_v2(conn(),
                           "SELECT 1 FROM characters WHERE public_id = ?1", -1,
                           &st, NULL)
        == SQLITE_OK)
    {
        sqlite3_bind_text(st, 1, public_id, -1, SQLITE_STATIC);
        found = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_finalize(st);
    }
    return found;
}

/*
 * The statement writing `fields` into row `public_id` (?1), its members
 * bound in column-table order: an UPDATE of the row, or an INSERT with
 * created_at and (unless given) updated_at `now`, state `processing`
 * unless given. NULL when it cannot be prepared.
 */
static sqlite3_stmt *
write_stmt(const char *public_id, json_t *fields, bool insert, int64_t now)
{
    char sql[2048], vals[512];
    size_t n = 0, nv = 0, i;
    sqlite3_stmt *st;
    json_t *v;
    int p = 2;

    if (insert) {
        n = (size_t) snprintf(sql, sizeof(sql),
                              "INSERT INTO characters(public_id, created_at");
        nv = (size_t) snprintf(vals, sizeof(vals), "?1, %lld", (long long) now);
        if (json_object_get(fields, "updated_at") == NULL) {
            n += (size_t) snprintf(sql + n, sizeof(sql) - n, ", updated_at");
            nv += (size_t) snprintf(vals + nv, sizeof(vals) - nv, ", %lld",
                                    (long long) now);
        }
        if (json_object_get(fields, "state") == NULL) {
            n += (size_t) snprintf(sql + n, sizeof(sql) - n, ", state");
            nv += (size_t) snprintf(vals + nv, sizeof(vals) - nv,
                                    ", 'processing'");
        }
        for (i = 0; i < S2A_NELEMS(columns); i++) {
            if (json_object_get(fields, columns[i].name) != NULL) {
                n += (size_t) snprintf(sql + n, sizeof(sql) - n, ", %s",
                                       columns[i].name);
                nv += (size_t) snprintf(vals + nv, sizeof(vals) - nv, ", ?%d",
                                        p++);
            }
        }
        snprintf(sql + n, sizeof(sql) - n, ") VALUES (%s)", vals);
    } else {
        n = (size_t) snprintf(sql, sizeof(sql), "UPDATE characters SET ");
        if (json_object_get(fields, "updated_at") == NULL) {
            n += (size_t) snprintf(sql + n, sizeof(sql) - n,
                                   "updated_at = %lld", (long long) now);
        } else {
            n += (size_t) snprintf(sql + n, sizeof(sql) - n, "id = id");
        }
        for (i = 0; i < S2A_NELEMS(columns); i++) {
            if (json_object_get(fields, columns[i].name) != NULL) {
                n += (size_t) snprintf(sql + n, sizeof(sql) - n, ", %s = ?%d",
                                       columns[i].name, p++);
            }
        }
        snprintf(sql + n, sizeof(sql) - n, " WHERE public_id = ?1");
    }
    if (sqlite3_prepare_v2(conn(), sql, -1, &st, NULL) != SQLITE_OK) {
        s2a_log(LOG_ERR, 0, "character write: %s", sqlite3_errmsg(conn()));
        return NULL;
    }
    sqlite3_bind_text(st, 1, public_id, -1, SQLITE_STATIC);
    p = 2;
    for (i = 0; i < S2A_NELEMS(columns); i++) {
        v = json_object_get(fields, columns[i].name);
        if (v != NULL) {
            bind_value(st, p++, (int) i, v);
        }
    }
    return st;
}

/* ---------------------------------------------------------------------
 * Operations
 */

/* "character_write": inserts or updates one row, answered after the
 * commit with the whole row. */
void
s2a_op_character_write(void *from, json_t *msg)
{
    const char *public_id =
        json_string_value(json_object_get(msg, "public_id"));
    json_t *fields = json_object_get(msg, "fields");
    json_t *reply = s2a_ctlserver_reply_for(msg), *row;
    const char *state;
    sqlite3_stmt *st;
    char err[160];
    bool insert;
    int rc;

    if (!s2a_characters_public_id_ok(public_id)) {
        s2a_ctlserver_fail_code(
            from, reply, "invalid",
            "public_id must be char_ and 24 lower-case hex digits");
        return;
    }
    if (s2a_ctlserver_batch() != S2A_OK) {
        s2a_ctlserver_fail_db(from, reply);
        return;
    }
    insert = !row_exists(public_id);
    if (s2a_characters_check(fields, insert, err, sizeof(err)) != S2A_OK) {
        s2a_ctlserver_fail_code(from, reply, "invalid", err);
        return;
    }
    st = write_stmt(public_id, fields, insert, s2a_now());
    if (st == NULL) {
        s2a_ctlserver_fail(from, reply, "database write failed");
        return;
    }
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        s2a_ctlserver_fail_code(
            from, reply, "conflict",
            "a cameo_id or character_id that another character has");
        return;
    }
    state = json_string_value(json_object_get(fields, "state"));
    if (rc == SQLITE_DONE && state != NULL && strcmp(state, "deleting") == 0) {
        /* The job's own delete: its attempt, leased (orphans.c). */
        s2a_orphans_marked(public_id, ((s2a_proc_t *) from)->pid);
    }
    if (rc != SQLITE_DONE || (row = row_get(public_id)) == NULL) {
        s2a_log(LOG_ERR, 0, "character %s not written: %s", public_id,
                sqlite3_errmsg(conn()));
        s2a_ctlserver_fail(from, reply, "database write failed");
        return;
    }
    s2a_log(LOG_INFO, 0, "character %s %s (state %s)", public_id,
            insert ? "created" : "updated",
            json_string_value(json_object_get(row, "state")));
    json_object_set_new(reply, "row", row);
    s2a_ctlserver_reply_later(from, reply);
}

/* Binds the filters of a listing message as ?1..?5 (see LIST_WHERE). */
#define LIST_WHERE \
    " WHERE (?1 IS NULL OR token_id = ?1) AND (?2 IS NULL OR owner = ?2)" \
    " AND (?3 IS NULL OR state = ?3) AND (?4 IS NULL OR username = ?4" \
    " COLLATE NOCASE) AND (?5 IS NULL OR instr(lower(username), lower(?5))" \
    " > 0 OR instr(lower(display_name), lower(?5)) > 0)"

static void
bind_filters(sqlite3_stmt *st, json_t *msg)
{
    static const char *const ints[] = { "token_id", "owner" };
    static const char *const strs[] = { "state", "username", "search" };
    json_t *v;
    size_t i;

    for (i = 0; i < S2A_NELEMS(ints); i++) {
        v = json_object_get(msg, ints[i]);
        if (json_is_integer(v)) {
            sqlite3_bind_int64(st, (int) i + 1, json_integer_value(v));
        }
    }
    for (i = 0; i < S2A_NELEMS(strs); i++) {
        v = json_object_get(msg, strs[i]);
        if (json_is_string(v)) {
            sqlite3_bind_text(st, (int) i + 3, json_string_value(v), -1,
                              SQLITE_STATIC);
        }
    }
}

/* "characters_list": a page of rows, newest first, and how many match. */
void
s2a_op_characters_list(void *from, json_t *msg)
{
    json_int_t limit = json_integer_value(json_object_get(msg, "limit"));
    json_int_t offset = json_integer_value(json_object_get(msg, "offset"));
    const char *search = json_string_value(json_object_get(msg, "search"));
    json_t *reply = s2a_ctlserver_reply_for(msg), *rows, *row;
    sqlite3_stmt *st;
    int64_t total = 0;
    int rc;

    s2a_ctlserver_flush();
    if (limit < 1 || limit > LIST_MAX) {
        limit = LIST_DEFAULT;
    }
    if (offset < 0 || offset > OFFSET_MAX) {
        offset = offset < 0 ? 0 : OFFSET_MAX;
    }
    if (search != NULL && strlen(search) > SEARCH_MAX) {
        s2a_ctlserver_fail_code(from, reply, "invalid", "search is too long");
        return;
    }
    if (sqlite3_prepare_v2(conn(), "SELECT count(*) FROM characters" LIST_WHERE,
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        s2a_ctlserver_fail(from, reply, "database read failed");
        return;
    }
    bind_filters(st, msg);
    if (sqlite3_step(st) == SQLITE_ROW) {
        total = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(conn(),
                           "SELECT " ROW_COLUMNS " FROM characters" LIST_WHERE
                           " ORDER BY id DESC LIMIT ?6 OFFSET ?7",
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        s2a_ctlserver_fail(from, reply, "database read failed");
        return;
    }
    bind_filters(st, msg);
    sqlite3_bind_int64(st, 6, (sqlite3_int64) limit);
    sqlite3_bind_int64(st, 7, (sqlite3_int64) offset);
    rows = json_array();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        row = row_json(st);
        if (row != NULL) {
            json_array_append_new(rows, row);
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(rows);
        s2a_ctlserver_fail(from, reply, "database read failed");
        return;
    }
    json_object_set_new(reply, "rows", rows);
    json_object_set_new(reply, "total", json_integer(total));
    s2a_ctlserver_reply(from, reply);
}

/* "character_get": one row by whichever key the message gives (a
 * username matches case-insensitively; of several, a ready one, then
 * the newest). */
void
s2a_op_character_get(void *from, json_t *msg)
{
    static const struct {
        const char *key;
        const char *where;
    } keys[] = {
        { "public_id", "public_id = ?1" },
        { "cameo_id", "cameo_id = ?1" },
        { "character_id", "character_id = ?1" },
        { "username", "username = ?1 COLLATE NOCASE" },
    };
    json_t *reply = s2a_ctlserver_reply_for(msg), *owner, *row = NULL;
    const char *value = NULL;
    sqlite3_stmt *st;
    char sql[512];
    size_t i;

    s2a_ctlserver_flush();
    for (i = 0; i < S2A_NELEMS(keys); i++) {
        value = json_string_value(json_object_get(msg, keys[i].key));
        if (value != NULL) {
            break;
        }
    }
    if (value == NULL) {
        s2a_ctlserver_fail_code(from, reply, "invalid",
                                "no key to look a character up by");
        return;
    }
    owner = json_object_get(msg, "owner");
    snprintf(sql, sizeof(sql),
             "SELECT " ROW_COLUMNS " FROM characters WHERE %s AND (?2 IS NULL "
             "OR owner = ?2) ORDER BY state = 'ready' DESC, id DESC LIMIT 1",
             keys[i].where);
    if (sqlite3_prepare_v2(conn(), sql, -1, &st, NULL) != SQLITE_OK) {
        s2a_ctlserver_fail(from, reply, "database read failed");
        return;
    }
    sqlite3_bind_text(st, 1, value, -1, SQLITE_STATIC);
    if (json_is_integer(owner)) {
        sqlite3_bind_int64(st, 2, json_integer_value(owner));
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        row = row_json(st);
    }
    sqlite3_finalize(st);
    if (row != NULL) {
        json_object_set_new(reply, "row", row);
    }
    s2a_ctlserver_reply(from, reply);
}

/* "character_delete": removes one row (Sora forgot it already). */
void
s2a_op_character_delete(void *from, json_t *msg)
{
    const char *public_id =
        json_string_value(json_object_get(msg, "public_id"));
    json_t *reply = s2a_ctlserver_reply_for(msg);
    sqlite3_stmt *st;
    int rc;

    if (s2a_ctlserver_batch() != S2A_OK) {
        s2a_ctlserver_fail_db(from, reply);
        return;
    }
    if (sqlite3_prepare_v2(conn(),
                           "DELETE FROM characters WHERE public_id = ?1", -1,
                           &st, NULL)
        != SQLITE_OK)
    {
        s2a_ctlserver_fail(from, reply, "database write failed");
        return;
    }
    sqlite3_bind_text(st, 1, public_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        s2a_ctlserver_fail(from, reply, "database write failed");
        return;
    }
    if (sqlite3_changes(conn()) == 0) {
        s2a_ctlserver_fail_code(from, reply, "not_found", "not found");
        return;
    }
    s2a_log(LOG_NOTICE, 0, "character %s deleted", public_id);
    s2a_ctlserver_reply_later(from, reply);
}

/* "character_owners": the token and visibility of every ready row whose
 * username is one of `usernames` (case-insensitive). */
void
s2a_op_character_owners(void *from, json_t *msg)
{
    json_t *names = json_object_get(msg, "usernames"), *v, *rows;
    json_t *reply = s2a_ctlserver_reply_for(msg);
    char sql[512];
    size_t i, n = json_array_size(names), len;
    sqlite3_stmt *st;

    if (n > S2A_CHARACTERS_OWNERS_MAX) {
        s2a_ctlserver_fail_code(from, reply, "invalid", "at most 16 usernames");
        return;
    }
    json_array_foreach (names, i, v) {
        if (!json_is_string(v)
            || json_string_length(v) > S2A_CHARACTERS_USERNAME_MAX) {
            s2a_ctlserver_fail_code(from, reply, "invalid",
                                    "usernames must be strings");
            return;
        }
    }
    rows = json_array();
    if (n == 0) {
        json_object_set_new(reply, "rows", rows);
        s2a_ctlserver_reply(from, reply);
        return;
    }
    s2a_ctlserver_flush();
    len = (size_t) snprintf(sql, sizeof(sql),
                            "SELECT username, token_id, visibility FROM "
                            "characters WHERE state = 'ready' AND username "
                            "COLLATE NOCASE IN (?1");
    for (i = 1; i < n; i++) {
        len += (size_t) snprintf(sql + len, sizeof(sql) - len, ", ?%zu", i + 1);
    }
    snprintf(sql + len, sizeof(sql) - len, ") ORDER BY id DESC");
    if (sqlite3_prepare_v2(conn(), sql, -1, &st, NULL) != SQLITE_OK) {
        json_decref(rows);
        s2a_ctlserver_fail(from, reply, "database read failed");
        return;
    }
    json_array_foreach (names, i, v) {
        sqlite3_bind_text(st, (int) i + 1, json_string_value(v), -1,
                          SQLITE_STATIC);
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        json_array_append_new(
            rows,
            json_pack("{s:o, s:I, s:o}", "username", s2a_db_col_text(st, 0),
                      "token_id", (json_int_t) sqlite3_column_int64(st, 1),
                      "visibility", s2a_db_col_text(st, 2)));
    }
    sqlite3_finalize(st);
    json_object_set_new(reply, "rows", rows);
    s2a_ctlserver_reply(from, reply);
}
