/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The quick judgement (mrimg_check, MRIMG_CHECK_QUICK) taken along on
 * another pass over the payload - a conversion's own - instead of a pass
 * of its own: the same checks, the same problems, the same cached result.
 *
 *   vf_judge_begin   the container checks; returns 1 when the judgement
 *                    cannot ride along (a payload the pass would not read
 *                    as the verifier does): call mrimg_check instead
 *   vf_judge_rider   attach it to the image (img_rider_add) before the pass
 *   vf_judge_end     after the pass: the remaining checks, the result cached
 *                    in img->judgement; 1 when the pass ended before the
 *                    stream's end (another consumer stopped it): no
 *                    judgement, call mrimg_check
 */
#ifndef MRIMG_VERIFY_JUDGE_H
#define MRIMG_VERIFY_JUDGE_H

#include "../image.h"

typedef struct vf_judge vf_judge;

MRIMG_INTERNAL int vf_judge_begin(mrimg_image *img, vf_judge **j, mrimg_error *err);
MRIMG_INTERNAL img_rider *vf_judge_rider(vf_judge *j);
MRIMG_INTERNAL int vf_judge_end(vf_judge *j, mrimg_image *img, const mrimg_verify_result **res,
                                mrimg_error *err);
MRIMG_INTERNAL void vf_judge_free(vf_judge *j);

#endif
