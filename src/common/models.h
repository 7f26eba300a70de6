/*
 * models.h: the fixed model table of the user's API contract.
 */
#ifndef S2A_MODELS_H
#define S2A_MODELS_H

#include "common/core.h"
#include "common/shm.h"

typedef enum {
    S2A_ORIENT_SQUARE = 0,
    S2A_ORIENT_LANDSCAPE,
    S2A_ORIENT_PORTRAIT
} s2a_orientation_t;

typedef struct s2a_model_s {
    const char *id;
    s2a_kind_t kind;
    s2a_orientation_t orientation;
    int width, height; /* images */
    int seconds;       /* videos */
    const char *description;
} s2a_model_t;

extern const s2a_model_t s2a_models[];
extern const size_t s2a_nmodels;

/* The model named `id`, or NULL. */
const s2a_model_t *s2a_model_find(const char *id);

/* The model a video request resolves to from seconds and orientation. */
const s2a_model_t *s2a_model_video(int seconds, s2a_orientation_t o);

const char *s2a_orientation_name(s2a_orientation_t o);

#endif /* S2A_MODELS_H */
