/* fileio: atomic writes (including failure paths), bounded reads, mkdir -p,
 * JSON-lines logs. */
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "selfsup/fileio.h"
#include "testutil.h"

static char tmpdir[256];

static const char *tpath(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

/* Number of entries in folder whose name contains ".tmp.". */
static int count_temps(const char *folder)
{
    DIR *d = opendir(folder);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strstr(de->d_name, ".tmp.")) n++;
    if (d) closedir(d);
    return n;
}

static int file_equals(const char *path, const char *text)
{
    void *data;
    size_t n;
    if (ss_read_file(path, 1 << 20, &data, &n) != SS_OK) return 0;
    int eq = n == strlen(text) && memcmp(data, text, n) == 0 && ((char *)data)[n] == '\0';
    free(data);
    return eq;
}

static void test_atomic(void)
{
    char p[512];
    snprintf(p, sizeof p, "%s", tpath("a.txt"));
    CHECK_OK(ss_write_file_atomic(p, "first", 5));
    CHECK(file_equals(p, "first"));
    CHECK_OK(ss_write_file_atomic(p, "second version", 14));
    CHECK(file_equals(p, "second version"));
    CHECK_OK(ss_write_file_atomic(tpath("empty.txt"), NULL, 0));
    CHECK(file_equals(tpath("empty.txt"), ""));
    CHECK(count_temps(tmpdir) == 0);

    /* Folder does not exist: error naming the path, nothing created. */
    CHECK(ss_write_file_atomic(tpath("nope/b.txt"), "x", 1) == SS_ERR_IO);
    CHECK(strstr(ss_errmsg(), "nope/b.txt: cannot create temporary file") != NULL);
    CHECK(access(tpath("nope"), F_OK) != 0);

    /* The rename fails (the target is a non-empty folder): the folder is
     * untouched and the temporary file is removed. */
    CHECK_OK(ss_mkdir_p(tpath("dir/inner")));
    CHECK(ss_write_file_atomic(tpath("dir"), "x", 1) == SS_ERR_IO);
    CHECK(strstr(ss_errmsg(), "cannot rename") != NULL);
    struct stat st;
    CHECK(stat(tpath("dir/inner"), &st) == 0 && S_ISDIR(st.st_mode));
    CHECK(count_temps(tmpdir) == 0);

    /* A failing streamed write (NULL data) aborts: old file intact, no temp. */
    ss_atomic_file *f;
    CHECK_OK(ss_atomic_open(p, &f));
    CHECK(count_temps(tmpdir) == 1);
    CHECK_OK(ss_atomic_write(f, "partial", 7));
    CHECK(ss_atomic_write(f, NULL, 3) == SS_ERR_INVALID);
    CHECK(file_equals(p, "second version"));
    CHECK(count_temps(tmpdir) == 0);

    /* Explicit abort: same. */
    CHECK_OK(ss_atomic_open(p, &f));
    CHECK_OK(ss_atomic_write(f, "abc", 3));
    ss_atomic_abort(f);
    CHECK(file_equals(p, "second version"));
    CHECK(count_temps(tmpdir) == 0);

    /* Streamed commit in pieces. */
    CHECK_OK(ss_atomic_open(p, &f));
    CHECK_OK(ss_atomic_write(f, "third ", 6));
    CHECK_OK(ss_atomic_write(f, "one", 3));
    CHECK_OK(ss_atomic_commit(f));
    CHECK(file_equals(p, "third one"));

    /* Two writers of the same path in one process get distinct temps. */
    ss_atomic_file *g;
    CHECK_OK(ss_atomic_open(p, &f));
    CHECK_OK(ss_atomic_open(p, &g));
    CHECK(count_temps(tmpdir) == 2);
    CHECK_OK(ss_atomic_write(g, "from g", 6));
    CHECK_OK(ss_atomic_write(f, "from f", 6));
    CHECK_OK(ss_atomic_commit(g));
    CHECK_OK(ss_atomic_commit(f));
    CHECK(file_equals(p, "from f"));
    CHECK(count_temps(tmpdir) == 0);

    /* Unwritable folder (only meaningful when not root). */
    if (geteuid() != 0) {
        CHECK_OK(ss_mkdir_p(tpath("ro")));
        CHECK_OK(ss_write_file_atomic(tpath("ro/c.txt"), "old", 3));
        chmod(tpath("ro"), 0555);
        CHECK(ss_write_file_atomic(tpath("ro/c.txt"), "new", 3) == SS_ERR_IO);
        CHECK(file_equals(tpath("ro/c.txt"), "old"));
        CHECK(count_temps(tpath("ro")) == 0);
        chmod(tpath("ro"), 0755);
        unlink(tpath("ro/c.txt"));
        rmdir(tpath("ro"));
    }
}

static void test_read(void)
{
    char p[512];
    snprintf(p, sizeof p, "%s", tpath("r.bin"));
    unsigned char bytes[300];
    for (int i = 0; i < 300; i++) bytes[i] = (unsigned char)(i * 7);
    CHECK_OK(ss_write_file_atomic(p, bytes, 300));
    void *data = NULL;
    size_t n = 0;
    CHECK_OK(ss_read_file(p, 300, &data, &n));
    CHECK(n == 300 && data && memcmp(data, bytes, 300) == 0);
    free(data);
    CHECK(ss_read_file(p, 299, &data, &n) == SS_ERR_NOMEM && data == NULL);
    CHECK(strstr(ss_errmsg(), "r.bin: file holds 300 bytes, more than the limit of 299") != NULL);
    CHECK(ss_read_file(tpath("missing.bin"), 10, &data, &n) == SS_ERR_IO);
    CHECK(strstr(ss_errmsg(), "missing.bin: cannot open") != NULL);
    CHECK(ss_read_file(tmpdir, 10, &data, &n) == SS_ERR_IO);
    CHECK(strstr(ss_errmsg(), "is a folder") != NULL);
    /* A non-regular file (no size from stat) read incrementally. */
    CHECK_OK(ss_read_file("/dev/null", 10, &data, &n));
    CHECK(n == 0 && ((char *)data)[0] == '\0');
    free(data);
}

static void test_mkdir(void)
{
    CHECK_OK(ss_mkdir_p(tpath("m/n/o/")));
    struct stat st;
    CHECK(stat(tpath("m/n/o"), &st) == 0 && S_ISDIR(st.st_mode));
    CHECK_OK(ss_mkdir_p(tpath("m/n"))); /* exists */
    CHECK_OK(ss_write_file_atomic(tpath("m/file"), "x", 1));
    CHECK(ss_mkdir_p(tpath("m/file/sub")) == SS_ERR_IO);
    CHECK(strstr(ss_errmsg(), "m/file': exists and is not a folder") != NULL);
    CHECK(ss_mkdir_p("") == SS_ERR_INVALID);
    unlink(tpath("m/file"));
    rmdir(tpath("m/n/o"));
    rmdir(tpath("m/n"));
    rmdir(tpath("m"));
}

static void test_jsonl(void)
{
    char p[512];
    snprintf(p, sizeof p, "%s", tpath("log.jsonl"));
    ss_jsonl *j;
    CHECK_OK(ss_jsonl_open(p, &j));
    CHECK_OK(ss_jsonl_write(j, "{\"step\":1,\"loss\":2.5}"));
    /* Flushed per line: visible before close. */
    CHECK(file_equals(p, "{\"step\":1,\"loss\":2.5}\n"));
    CHECK(ss_jsonl_write(j, "{\"a\":\n1}") == SS_ERR_INVALID);
    CHECK(strstr(ss_errmsg(), "must not contain a newline") != NULL);
    ss_jsonl_close(j);
    CHECK_OK(ss_jsonl_open(p, &j)); /* appends */
    CHECK_OK(ss_jsonl_write(j, "{\"step\":2}"));
    ss_jsonl_close(j);
    CHECK(file_equals(p, "{\"step\":1,\"loss\":2.5}\n{\"step\":2}\n"));
    ss_jsonl_close(NULL);
    CHECK(ss_jsonl_open(tpath("nope/log.jsonl"), &j) == SS_ERR_IO && j == NULL);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "test_fileio_tmp_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_atomic();
    test_read();
    test_mkdir();
    test_jsonl();
    const char *files[] = {"a.txt", "empty.txt", "r.bin", "log.jsonl"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) unlink(tpath(files[i]));
    rmdir(tpath("dir/inner"));
    rmdir(tpath("dir"));
    CHECK(rmdir(tmpdir) == 0); /* nothing else left behind */
    TEST_MAIN_END();
}
