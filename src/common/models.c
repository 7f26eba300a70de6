/*
 * models.c: model ids, their kind, size and duration.
 */
#include "common/models.h"

#include <string.h>

const s2a_model_t s2a_models[] = {
    { "sora-image", S2A_KIND_IMAGE, S2A_ORIENT_SQUARE, 360, 360, 0,
      "Image generation - 360x360" },
    { "sora-image-landscape", S2A_KIND_IMAGE, S2A_ORIENT_LANDSCAPE, 540, 360, 0,
      "Image generation - 540x360" },
    { "sora-image-portrait", S2A_KIND_IMAGE, S2A_ORIENT_PORTRAIT, 360, 540, 0,
      "Image generation - 360x540" },
    { "sora-video-10s", S2A_KIND_VIDEO, S2A_ORIENT_SQUARE, 0, 0, 10,
      "Video generation - square, 10 seconds" },
    { "sora-video-15s", S2A_KIND_VIDEO, S2A_ORIENT_SQUARE, 0, 0, 15,
      "Video generation - square, 15 seconds" },
    { "sora-video-landscape-10s", S2A_KIND_VIDEO, S2A_ORIENT_LANDSCAPE, 0, 0,
      10, "Video generation - landscape, 10 seconds" },
    { "sora-video-landscape-15s", S2A_KIND_VIDEO, S2A_ORIENT_LANDSCAPE, 0, 0,
      15, "Video generation - landscape, 15 seconds" },
    { "sora-video-portrait-10s", S2A_KIND_VIDEO, S2A_ORIENT_PORTRAIT, 0, 0, 10,
      "Video generation - portrait, 10 seconds" },
    { "sora-video-portrait-15s", S2A_KIND_VIDEO, S2A_ORIENT_PORTRAIT, 0, 0, 15,
      "Video generation - portrait, 15 seconds" },
};

const size_t s2a_nmodels = S2A_NELEMS(s2a_models);

const s2a_model_t *
s2a_model_find(const char *id)
{
    size_t i;

    for (i = 0; i < s2a_nmodels; i++) {
        if (strcmp(s2a_models[i].id, id) == 0) {
            return &s2a_models[i];
        }
    }
    return NULL;
}

const s2a_model_t *
s2a_model_video(int seconds, s2a_orientation_t o)
{
    size_t i;

    for (i = 0; i < s2a_nmodels; i++) {
        if (s2a_models[i].kind == S2A_KIND_VIDEO
            && s2a_models[i].orientation == o
            && s2a_models[i].seconds == seconds)
        {
            return &s2a_models[i];
        }
    }
    return NULL;
}

const char *
s2a_orientation_name(s2a_orientation_t o)
{
    switch (o) {
    case S2A_ORIENT_LANDSCAPE: return "landscape";
    case S2A_ORIENT_PORTRAIT: return "portrait";
    case S2A_ORIENT_SQUARE: break;
    }
    return "square";
}
