/*
 * test_data.c: the pure parts of the Sora data routes
 * (src/worker/data.c): query and path values with their defaults and
 * bounds, the backend paths with every value escaped, the answers built
 * from Sora's (E28-E32) and the invite counts (E3).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "worker/data.h"

#include <stdlib.h>
#include <string.h>

static s2a_data_query_t q;
static s2a_data_error_t err;

/* Parses a `kind` request with `raw_path` and `query` (NULL: none). */
static int
parse(s2a_data_kind_t kind, const char *raw_path, const char *query,
      int64_t path_id)
{
    s2a_req_t req;

    memset(&req, 0, sizeof(req));
    req.method_name = "GET";
    req.raw_path = raw_path;
    req.query = query;
    req.path_id = path_id;
    return s2a_data_parse(kind, &req, &q, &err);
}

/* Expects a 400 invalid_value naming `param`. */
static void
expect_bad(s2a_data_kind_t kind, const char *raw_path, const char *query,
           const char *param)
{
    if (parse(kind, raw_path, query, 0) != S2A_ERROR) {
        fail_msg("%s?%s was accepted", raw_path, query);
    }
    assert_int_equal(err.status, 400);
    assert_string_equal(err.type, "invalid_request_error");
    assert_string_equal(err.code, "invalid_value");
    assert_string_equal(err.param, param);
}

static void
expect_path(const char *want)
{
    char out[1024];

    assert_int_equal(s2a_data_upstream_path(&q, out, sizeof(out)), S2A_OK);
    assert_string_equal(out, want);
}

static void
test_defaults(void **state)
{
    (void) state;
    assert_int_equal(parse(S2A_DATA_FEED, "/v1/feed", NULL, 0), S2A_OK);
    assert_int_equal(q.limit, 8);
    assert_string_equal(q.cut, "nf2_latest");
    assert_string_equal(q.cursor, "");
    assert_int_equal(q.token_id, 0);
    expect_path("/project_y/feed?limit=8&cut=nf2_latest");

    assert_int_equal(parse(S2A_DATA_SEARCH, "/v1/characters/search", "", 0),
                     S2A_OK);
    assert_int_equal(q.limit, 10);
    assert_string_equal(q.intent, "users");
    assert_string_equal(q.subject, "");
    expect_path(
        "/project_y/profile/search_mentions?username=&intent=users&limit=10");

    assert_int_equal(
        parse(S2A_DATA_TOKEN_FEED, "/v1/tokens/3/profile-feed", NULL, 3),
        S2A_OK);
    assert_int_equal(q.token_id, 3);
    expect_path("/project_y/profile_feed/me?limit=8&cut=nf2");

    assert_int_equal(parse(S2A_DATA_INVITE, "/v1/invite-codes", NULL, 0),
                     S2A_OK);
    expect_path("/project_y/invite/mine");
}

static void
test_values(void **state)
{
    (void) state;
    assert_int_equal(parse(S2A_DATA_FEED, "/v1/feed",
                           "cut=nf2_top&limit=100&cursor=eyJ9%3D%3D&token_id=7"
                           "&limit=3",
                           0),
                     S2A_OK);
    assert_int_equal(q.limit, 100); /* the first of a repeated value */
    assert_string_equal(q.cut, "nf2_top");
    assert_string_equal(q.cursor, "eyJ9==");
    assert_int_equal(q.token_id, 7);
    expect_path("/project_y/feed?cursor=eyJ9%3D%3D&limit=100&cut=nf2_top");

    /* A hostile search text stays one value; '+' is a space. */
    assert_int_equal(parse(S2A_DATA_SEARCH, "/v1/characters/search",
                           "username=a%26limit%3D999+%23%25%C3%A9"
                           "&intent=cameo&limit=1",
                           0),
                     S2A_OK);
    assert_string_equal(q.subject, "a&limit=999 #%\xc3\xa9");
    expect_path("/project_y/profile/search_mentions?username="
                "a%26limit%3D999%20%23%25%C3%A9&intent=cameo&limit=1");

    /* Path values are read from the raw path: %2F stays in the segment. */
    assert_int_equal(parse(S2A_DATA_PROFILE, "/v1/profiles/a%2Fb%3Fc", NULL, 0),
                     S2A_OK);
    assert_string_equal(q.subject, "a/b?c");
    expect_path("/project_y/profile/username/a%2Fb%3Fc");
    assert_int_equal(parse(S2A_DATA_USER_FEED, "/v1/users/user-x%20y/feed",
                           "cursor=c1&limit=2", 0),
                     S2A_OK);
    assert_string_equal(q.subject, "user-x y");
    expect_path("/project_y/profile_feed/user-x%20y?cursor=c1&limit=2&cut=nf2");
}

static void
test_bounds(void **state)
{
    static const char *const limits[] = { "limit=0",   "limit=101", "limit=-1",
                                          "limit=abc", "limit=",    "limit=1.0",
                                          "limit=%00", "limit=%zz" };
    static const char *const tokens[] = { "token_id=0", "token_id=-2",
                                          "token_id=x", "token_id=",
                                          "token_id=99999999999999999999" };
    char long_value[300], query[320];
    size_t i;

    (void) state;
    for (i = 0; i < S2A_NELEMS(limits); i++) {
        expect_bad(S2A_DATA_FEED, "/v1/feed", limits[i], "limit");
    }
    for (i = 0; i < S2A_NELEMS(tokens); i++) {
        expect_bad(S2A_DATA_SEARCH, "/v1/characters/search", tokens[i],
                   "token_id");
    }
    expect_bad(S2A_DATA_SEARCH, "/v1/characters/search", "intent=all",
               "intent");
    expect_bad(S2A_DATA_FEED, "/v1/feed", "cut=nf3", "cut");
    expect_bad(S2A_DATA_FEED, "/v1/feed", "cursor=%", "cursor");
    memset(long_value, 'u', 129);
    long_value[129] = '\0';
    snprintf(query, sizeof(query), "username=%s", long_value);
    expect_bad(S2A_DATA_SEARCH, "/v1/characters/search", query, "username");
    snprintf(query, sizeof(query), "/v1/profiles/%s", long_value);
    expect_bad(S2A_DATA_PROFILE, query, NULL, "username");
    long_value[128] = '\0';
    snprintf(query, sizeof(query), "/v1/profiles/%s", long_value);
    assert_int_equal(parse(S2A_DATA_PROFILE, query, NULL, 0), S2A_OK);
    /* token_id is not a value of the token feed: its id is the path's. */
    assert_int_equal(parse(S2A_DATA_TOKEN_FEED, "/v1/tokens/2/profile-feed",
                           "token_id=x", 2),
                     S2A_OK);
    assert_int_equal(q.token_id, 2);
    /* An escaped path that does not fit the URL buffer. */
    assert_int_equal(parse(S2A_DATA_FEED, "/v1/feed", "cursor=%26%26%26", 0),
                     S2A_OK);
    {
        char small[40];

        assert_int_equal(s2a_data_upstream_path(&q, small, sizeof(small)),
                         S2A_ERROR);
    }
}

static void
test_paths(void **state)
{
    static const char *const bad[] = { "/v1/profiles/", "/v1/profiles/a/b",
                                       "/v1/profiles/a/", "/v1/profile/a" };
    static const char *const bad_feed[] = { "/v1/users/x", "/v1/users//feed",
                                            "/v1/users/x/feed/",
                                            "/v1/users/x/feedx",
                                            "/v1/users/x/y/feed" };
    size_t i;

    (void) state;
    for (i = 0; i < S2A_NELEMS(bad); i++) {
        assert_int_equal(parse(S2A_DATA_PROFILE, bad[i], NULL, 0), S2A_ERROR);
        assert_int_equal(err.status, 404);
        assert_string_equal(err.code, "unknown_url");
    }
    for (i = 0; i < S2A_NELEMS(bad_feed); i++) {
        assert_int_equal(parse(S2A_DATA_USER_FEED, bad_feed[i], NULL, 0),
                         S2A_ERROR);
        assert_int_equal(err.status, 404);
    }
    assert_int_equal(
        parse(S2A_DATA_TOKEN_FEED, "/v1/tokens/0/profile-feed", NULL, 0),
        S2A_ERROR);
    assert_int_equal(err.status, 404);
}

static json_t *
render(const char *up_text)
{
    json_t *up = json_loads(up_text, 0, NULL), *out;

    assert_non_null(up);
    out = s2a_data_render(&q, up, &err);
    json_decref(up);
    return out;
}

/* Expects `out` (taken) to serialise as `want`. */
static void
expect_json(json_t *out, const char *want)
{
    char *text;

    assert_non_null(out);
    text = json_dumps(out, JSON_COMPACT);
    assert_string_equal(text, want);
    free(text);
    json_decref(out);
}

static void
test_render(void **state)
{
    (void) state;
    assert_int_equal(parse(S2A_DATA_FEED, "/v1/feed", "cut=nf2", 0), S2A_OK);
    expect_json(
        render("{\"items\":[{\"post\":{\"id\":\"s_1\",\"text\":\"t\","
               "\"like_count\":2,\"extra\":1,\"attachments\":[{\"kind\":"
               "\"sora\",\"n_frames\":450,\"encodings\":{\"thumbnail\":{"
               "\"path\":\"http://x/t.jpg\"}}}]},\"profile\":{\"user_id\":"
               "\"u\",\"username\":\"n\",\"secret\":1}},{\"post\":3},{}],"
               "\"cursor\":\"c2\"}"),
        "{\"success\":true,\"cut\":\"nf2\",\"count\":1,\"cursor\":\"c2\","
        "\"items\":[{\"id\":\"s_1\",\"text\":\"t\",\"permalink\":null,"
        "\"preview_image_url\":null,\"posted_at\":null,\"like_count\":2,"
        "\"view_count\":null,\"remix_count\":null,\"attachment\":{\"kind\":"
        "\"sora\",\"url\":null,\"downloadable_url\":null,\"width\":null,"
        "\"height\":null,\"n_frames\":450,\"duration_seconds\":15.0,"
        "\"thumbnail_url\":\"http://x/t.jpg\"},\"author\":{\"user_id\":\"u\","
        "\"username\":\"n\",\"display_name\":null,\"profile_picture_url\":"
        "null,\"permalink\":null,\"verified\":null,\"follower_count\":null}}"
        "]}");
    assert_null(render("{\"cursor\":null}"));
    assert_int_equal(err.status, 502);
    assert_null(render("[]"));
    assert_int_equal(err.status, 502);

    assert_int_equal(
        parse(S2A_DATA_SEARCH, "/v1/characters/search", "username=fl", 0),
        S2A_OK);
    expect_json(
        render("{\"items\":[{\"token\":\"<@ch_1>\",\"profile\":{\"user_id\":"
               "\"ch_1\",\"username\":\"fluffy\",\"can_cameo\":true,"
               "\"owner_profile\":{\"user_id\":\"u\",\"username\":\"o\","
               "\"display_name\":\"O\",\"x\":1}}},{\"profile\":{\"username\":"
               "\"b\",\"owner_profile\":null}},{\"token\":\"t\"}]}"),
        "{\"success\":true,\"query\":\"fl\",\"count\":2,\"results\":[{"
        "\"user_id\":\"ch_1\",\"username\":\"fluffy\",\"display_name\":null,"
        "\"profile_picture_url\":null,\"permalink\":null,\"can_cameo\":true,"
        "\"verified\":null,\"follower_count\":null,\"token\":\"<@ch_1>\","
        "\"owner\":{\"user_id\":\"u\",\"username\":\"o\",\"display_name\":"
        "\"O\"}},{\"user_id\":null,\"username\":\"b\",\"display_name\":null,"
        "\"profile_picture_url\":null,\"permalink\":null,\"can_cameo\":null,"
        "\"verified\":null,\"follower_count\":null,\"token\":null,\"owner\":"
        "null}]}");

    assert_int_equal(parse(S2A_DATA_PROFILE, "/v1/profiles/x", NULL, 0),
                     S2A_OK);
    expect_json(render("{\"user_id\":\"u\",\"k\":[1]}"),
                "{\"success\":true,\"profile\":{\"user_id\":\"u\",\"k\":[1]}}");
    assert_int_equal(parse(S2A_DATA_USER_FEED, "/v1/users/u%201/feed", NULL, 0),
                     S2A_OK);
    expect_json(render("{\"items\":[],\"cursor\":null}"),
                "{\"success\":true,\"user_id\":\"u 1\",\"feed\":{\"items\":[],"
                "\"cursor\":null}}");
    assert_int_equal(
        parse(S2A_DATA_TOKEN_FEED, "/v1/tokens/9/profile-feed", NULL, 9),
        S2A_OK);
    expect_json(render("{}"), "{\"success\":true,\"token_id\":9,\"feed\":{}}");
}

static void
test_invite(void **state)
{
    const char *code = NULL;
    json_t *j;

    (void) state;
    j = json_loads("{\"invite_code\":\"AB12\",\"redeemed_count\":1,"
                   "\"total_count\":4}",
                   0, NULL);
    assert_int_equal(s2a_data_invite_left(j, &code), 3);
    assert_string_equal(code, "AB12");
    json_decref(j);
    j = json_loads("{\"invite_code\":\"AB12\",\"redeemed_count\":5,"
                   "\"total_count\":4}",
                   0, NULL);
    assert_int_equal(s2a_data_invite_left(j, &code), 0);
    json_decref(j);
    j = json_loads("{\"invite_code\":\"AB12\",\"redeemed_count\":-9223372036854"
                   "775807,\"total_count\":9223372036854775807}",
                   0, NULL);
    assert_int_equal(s2a_data_invite_left(j, &code), -1);
    json_decref(j);
    j = json_loads("{\"invite_code\":\"\",\"redeemed_count\":0,"
                   "\"total_count\":4}",
                   0, NULL);
    assert_int_equal(s2a_data_invite_left(j, &code), -1);
    json_decref(j);
    assert_int_equal(s2a_data_invite_left(NULL, &code), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults), cmocka_unit_test(test_values),
        cmocka_unit_test(test_bounds),   cmocka_unit_test(test_paths),
        cmocka_unit_test(test_render),   cmocka_unit_test(test_invite),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
