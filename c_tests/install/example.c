/* Built by `make test-install` against an installed librio only:
 *   gcc example.c $(pkg-config --cflags --libs rio)
 * Writes and reads back a file in the directory given as argv[1]. */
#include <rio.h>

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    char path[4096];
    snprintf(path, sizeof path, "%s/example.dat", argc > 1 ? argv[1] : ".");
    rio_runtime_t *rt = NULL;
    rio_file_t *f = NULL;
    if (rio_runtime_open(NULL, &rt) < 0 ||
        rio_file_open(rt, path, RIO_OPEN_READ | RIO_OPEN_WRITE | RIO_OPEN_CREATE, 0644, &f) < 0) {
        fprintf(stderr, "example: %s\n", rio_last_error_message());
        return 1;
    }
    char buf[32] = {0};
    if (rio_file_write_at(f, "installed librio", 16, 0) != 16 || rio_file_read_at(f, buf, sizeof buf, 0) != 16 ||
        strcmp(buf, "installed librio") != 0) {
        fprintf(stderr, "example: %s\n", rio_last_error_message());
        return 1;
    }
    printf("librio %s (header %s), backend %d: %s\n", rio_version(), RIO_VERSION_STRING,
           rio_runtime_backend(rt), buf);
    rio_file_close(f);
    rio_runtime_close(rt);
    return strcmp(rio_version(), RIO_VERSION_STRING) == 0 ? 0 : 1;
}
