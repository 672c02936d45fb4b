/* textdiff.h — a unified diff of two texts, line by line (LCS), for showing what a new
 * workflow version changed (`ratchet workflows history`, GET .../versions, proposals). */
#ifndef RT_TEXTDIFF_H
#define RT_TEXTDIFF_H

/* "--- label_a\n+++ label_b\n@@ -l,n +l,n @@\n ..." with 3 lines of context; "" when the
 * texts are equal. Texts of more than RT_TEXTDIFF_MAX_LINES lines each are shown as one
 * hunk replacing everything. NULL a is the empty text. Caller frees; NULL when out of memory. */
#define RT_TEXTDIFF_MAX_LINES 4000
char *rt_text_diff(const char *a, const char *b, const char *label_a, const char *label_b);

#endif
