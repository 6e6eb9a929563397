/* Internal: JPEG round trip used by the jpeg corruption. */
#ifndef SS_ROBUST_JPEG_INTERNAL_H
#define SS_ROBUST_JPEG_INTERNAL_H

/* Encode hwc (h x w x comp bytes, comp 1 or 3) as JPEG at `quality`
 * (1..100) and decode it back into hwc. Returns 1 on success, 0 when
 * memory ran out or the codec failed (hwc unchanged then). */
int ss_jpeg_roundtrip_u8(unsigned char *hwc, int w, int h, int comp, int quality);

#endif
