/* JSON files read and written whole: see jsonfile.h. */
#include "jsonfile.h"
#include <stdlib.h>
#include <string.h>
#include "fileio.h"
#include "internal.h"
#include "outfile.h"

sl_status sl_json_file_read(const char *path, cJSON **root, char *msg, size_t msglen)
{
    *root = NULL;
    unsigned char *data;
    size_t len;
    sl_status st = sl_file_read(path, &data, &len, msg, msglen);
    if (st != SL_OK) return st;
    /* a NUL inside the file would end the text early: not JSON */
    *root = strlen((const char *)data) == len ? cJSON_Parse((const char *)data) : NULL;
    free(data);
    if (!*root) return sl_errf(msg, msglen, SL_EFORMAT, "%s is not valid JSON", path);
    return SL_OK;
}

sl_status sl_json_file_write(const char *path, const cJSON *root, int newline, const char *what, char *msg, size_t msglen)
{
    char *text = root ? cJSON_Print(root) : NULL;
    size_t n = text ? strlen(text) : 0;
    char *t2 = text && newline ? realloc(text, n + 2) : text;
    if (!t2) {
        cJSON_free(text);
        return sl_errf(msg, msglen, SL_ENOMEM, "%s: out of memory", what);
    }
    if (newline) {
        t2[n++] = '\n';
        t2[n] = 0;
    }
    sl_status st = sl_out_write_file(path, t2, n, msg, msglen);
    cJSON_free(t2);
    return st;
}
