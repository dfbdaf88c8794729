#include "server/tar/tar.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

namespace {

/* ---- building archives ------------------------------------------------- */

la_ssize_t AppendToString(struct archive *, void *ctx, const void *buf, size_t n) {
    static_cast<std::string *>(ctx)->append(static_cast<const char *>(buf), n);
    return static_cast<la_ssize_t>(n);
}

/* Writes a tar in memory with libarchive, the way a client's tar tool would. */
class TarBuilder {
  public:
    explicit TarBuilder(int format = ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, bool gzip = false)
        : a_(archive_write_new()), e_(archive_entry_new()) {
        EXPECT_EQ(ARCHIVE_OK, archive_write_set_format(a_, format));
        if (gzip) {
            EXPECT_EQ(ARCHIVE_OK, archive_write_add_filter_gzip(a_));
        }
        archive_write_set_bytes_in_last_block(a_, 1);
        EXPECT_EQ(ARCHIVE_OK,
                  archive_write_open2(a_, &out_, nullptr, AppendToString, nullptr, nullptr));
    }
    ~TarBuilder() {
        archive_entry_free(e_);
        archive_write_free(a_);
    }

    TarBuilder &File(const std::string &path, const std::string &data, unsigned mode = 0644) {
        Header(path, AE_IFREG, mode, data.size());
        if (!data.empty()) {
            EXPECT_EQ(static_cast<la_ssize_t>(data.size()),
                      archive_write_data(a_, data.data(), data.size()));
        }
        return *this;
    }
    TarBuilder &Dir(const std::string &path, unsigned mode = 0755) {
        return Header(path, AE_IFDIR, mode, 0);
    }
    TarBuilder &Symlink(const std::string &path, const std::string &target) {
        return Header(path, AE_IFLNK, 0777, 0, &target);
    }
    TarBuilder &Hardlink(const std::string &path, const std::string &target) {
        archive_entry_clear(e_);
        archive_entry_copy_pathname(e_, path.c_str());
        archive_entry_set_filetype(e_, AE_IFREG);
        archive_entry_set_perm(e_, 0644);
        archive_entry_copy_hardlink(e_, target.c_str());
        archive_entry_set_size(e_, 0);
        EXPECT_EQ(ARCHIVE_OK, archive_write_header(a_, e_));
        return *this;
    }
    TarBuilder &Special(const std::string &path, unsigned type) {
        return Header(path, type, 0644, 0);
    }
    std::string Finish() {
        EXPECT_EQ(ARCHIVE_OK, archive_write_close(a_));
        return out_;
    }

  private:
    TarBuilder &Header(const std::string &path, unsigned type, unsigned mode, size_t size,
                       const std::string *target = nullptr) {
        archive_entry_clear(e_);
        archive_entry_copy_pathname(e_, path.c_str());
        archive_entry_set_filetype(e_, type);
        archive_entry_set_perm(e_, mode);
        archive_entry_set_size(e_, static_cast<la_int64_t>(size));
        archive_entry_set_uid(e_, 1000);
        archive_entry_set_mtime(e_, 1700000000, 0);
        if (target)
            archive_entry_copy_symlink(e_, target->c_str());
        /* A warning is libarchive failing to convert non-ASCII bytes from
         * the C locale to UTF-8: it then writes them raw. */
        EXPECT_LE(ARCHIVE_WARN, archive_write_header(a_, e_));
        return *this;
    }

    struct archive *a_;
    struct archive_entry *e_;
    std::string out_;
};

/* A hand-made ustar header, for what no well-behaved writer produces
 * (absurd sizes, empty link targets, bad checksums). The size is written in
 * base-256 when it does not fit in 11 octal digits. */
std::string RawHeader(const std::string &name, char type, uint64_t size,
                      const std::string &link = "") {
    std::string h(512, '\0');
    memcpy(&h[0], name.data(), std::min<size_t>(name.size(), 100));
    memcpy(&h[100], "0000644", 7);
    memcpy(&h[108], "0000000", 7);
    memcpy(&h[116], "0000000", 7);
    if (size < (UINT64_C(1) << 33)) {
        snprintf(&h[124], 12, "%011llo", static_cast<unsigned long long>(size));
    } else {
        h[124] = static_cast<char>(0x80);
        for (int i = 0; i < 8; i++)
            h[135 - i] = static_cast<char>((size >> (8 * i)) & 0xff);
    }
    memcpy(&h[136], "00000000000", 11);
    h[156] = type;
    memcpy(&h[157], link.data(), std::min<size_t>(link.size(), 100));
    memcpy(&h[257], "ustar", 6);
    memcpy(&h[263], "00", 2);
    memset(&h[148], ' ', 8);
    unsigned sum = 0;
    for (unsigned char c : h)
        sum += c;
    snprintf(&h[148], 8, "%06o", sum);
    return h;
}

/* A pax extended header ('x') carrying `records` ("key=value" strings), as
 * Python's tarfile writes for names that ustar cannot hold. */
std::string PaxHeader(const std::vector<std::string> &records) {
    std::string body;
    for (const std::string &r : records) {
        /* "LEN key=value\n" where LEN counts the whole record. */
        size_t len = r.size() + 3;
        while (std::to_string(len).size() + 2 + r.size() != len)
            len++;
        body += std::to_string(len) + " " + r + "\n";
    }
    std::string out = RawHeader("././@PaxHeader", 'x', body.size()) + body;
    out.append((512 - body.size() % 512) % 512, '\0');
    return out;
}

/* A regular file with its data padded to the block size. */
std::string RawFile(const std::string &name, const std::string &data) {
    std::string out = RawHeader(name, '0', data.size()) + data;
    out.append((512 - data.size() % 512) % 512, '\0');
    return out;
}

std::string EndBlocks() {
    return std::string(1024, '\0');
}

/* ---- parsing helpers --------------------------------------------------- */

struct ProjectDeleter {
    void operator()(px_project *p) const { px_project_free(p); }
};
using Project = std::unique_ptr<px_project, ProjectDeleter>;

px_tar_limits Defaults() {
    px_tar_limits l;
    px_tar_limits_default(&l);
    return l;
}

Project FromTar(const std::string &tar, px_error *err, const px_tar_limits *limits = nullptr) {
    return Project(px_project_from_tar(reinterpret_cast<const uint8_t *>(tar.data()), tar.size(),
                                       limits, err));
}

/* Parses `tar`, expecting success. */
Project Parse(const std::string &tar, const px_tar_limits *limits = nullptr) {
    px_error err = PX_ERROR_INIT;
    Project p = FromTar(tar, &err, limits);
    EXPECT_TRUE(p) << err.msg;
    EXPECT_EQ(PX_OK, err.code);
    return p;
}

/* Parses `tar`, expecting PX_E_INVALID; returns the message. */
std::string Reject(const std::string &tar, const px_tar_limits *limits = nullptr) {
    px_error err = PX_ERROR_INIT;
    Project p = FromTar(tar, &err, limits);
    EXPECT_FALSE(p);
    EXPECT_EQ(PX_E_INVALID, err.code) << err.msg;
    return err.msg;
}

struct InFile {
    std::string path;
    std::string data;
    uint32_t mode;
};

Project FromFiles(const std::vector<InFile> &files, px_error *err,
                  const px_tar_limits *limits = nullptr) {
    std::vector<px_file_in> in;
    for (const InFile &f : files)
        in.push_back(px_file_in{f.path.data(), f.path.size(),
                                reinterpret_cast<const uint8_t *>(f.data.data()), f.data.size(),
                                f.mode});
    return Project(px_project_from_files(in.data(), in.size(), limits, err));
}

std::string RejectFiles(const std::vector<InFile> &files, const px_tar_limits *limits = nullptr) {
    px_error err = PX_ERROR_INIT;
    Project p = FromFiles(files, &err, limits);
    EXPECT_FALSE(p);
    EXPECT_EQ(PX_E_INVALID, err.code) << err.msg;
    return err.msg;
}

std::vector<std::string> Paths(const px_project *p) {
    std::vector<std::string> out;
    for (size_t i = 0; i < p->n_entries; i++)
        out.push_back(p->entries[i].path);
    return out;
}

std::string Data(const px_entry &e) {
    return std::string(reinterpret_cast<const char *>(e.data), e.len);
}

const px_entry *Find(const px_project *p, const std::string &path) {
    for (size_t i = 0; i < p->n_entries; i++)
        if (path == p->entries[i].path)
            return &p->entries[i];
    return nullptr;
}

std::string Entrypoint(const px_project *p, const char *requested) {
    px_error err = PX_ERROR_INIT;
    const char *e = px_project_entrypoint(p, requested, &err);
    EXPECT_TRUE(e) << err.msg;
    return e ? e : "";
}

std::string EntrypointError(const px_project *p, const char *requested) {
    px_error err = PX_ERROR_INIT;
    const char *e = px_project_entrypoint(p, requested, &err);
    EXPECT_FALSE(e) << e;
    EXPECT_EQ(PX_E_INVALID, err.code);
    return err.msg;
}

std::string Pack(const px_project *p) {
    uint8_t *out = nullptr;
    size_t len = 0;
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(0, px_project_pack(p, &out, &len, &err)) << err.msg;
    std::string s(reinterpret_cast<const char *>(out), len);
    free(out);
    return s;
}

void ExpectSameEntries(const px_project *a, const px_project *b) {
    ASSERT_EQ(a->n_entries, b->n_entries);
    EXPECT_EQ(a->total_bytes, b->total_bytes);
    for (size_t i = 0; i < a->n_entries; i++) {
        const px_entry &x = a->entries[i];
        const px_entry &y = b->entries[i];
        EXPECT_STREQ(x.path, y.path);
        EXPECT_EQ(x.type, y.type) << x.path;
        EXPECT_EQ(x.mode, y.mode) << x.path;
        EXPECT_EQ(Data(x), Data(y)) << x.path;
        EXPECT_STREQ(x.link_target ? x.link_target : "", y.link_target ? y.link_target : "");
    }
}

#define EXPECT_HAS(haystack, needle)                                                               \
    EXPECT_NE(std::string::npos, std::string(haystack).find(needle))                               \
        << "message: " << (haystack) << "\nexpected to contain: " << (needle)

/* ---- accepted input ---------------------------------------------------- */

TEST(TarLimits, Defaults) {
    px_tar_limits l = Defaults();
    EXPECT_EQ(10000u, l.max_entries);
    EXPECT_EQ(1024u, l.max_path_len);
    EXPECT_EQ(32u, l.max_path_depth);
    EXPECT_EQ(UINT64_C(256) << 20, l.max_total_bytes);
}

TEST(TarParse, ReadsFilesDirsAndLinksInOrder) {
    std::string tar = TarBuilder()
                          .Dir("pkg", 0750)
                          .File("pkg/util.py", "X = 1\n", 0600)
                          .File("main.py", "print('hi')\n", 0755)
                          .Symlink("util.py", "pkg/util.py")
                          .File("empty.txt", "")
                          .Finish();
    Project p = Parse(tar);
    ASSERT_TRUE(p);
    EXPECT_EQ((std::vector<std::string>{"pkg", "pkg/util.py", "main.py", "util.py", "empty.txt"}),
              Paths(p.get()));
    EXPECT_EQ(PX_ENTRY_DIR, p->entries[0].type);
    EXPECT_EQ(0750u, p->entries[0].mode);
    EXPECT_EQ(PX_ENTRY_FILE, p->entries[1].type);
    EXPECT_EQ("X = 1\n", Data(p->entries[1]));
    EXPECT_EQ(0600u, p->entries[1].mode);
    EXPECT_EQ(0755u, p->entries[2].mode);
    EXPECT_EQ(PX_ENTRY_SYMLINK, p->entries[3].type);
    EXPECT_STREQ("pkg/util.py", p->entries[3].link_target);
    EXPECT_EQ(0u, p->entries[4].len);
    EXPECT_EQ(6u + 12u, p->total_bytes);
    EXPECT_TRUE(px_project_has_file(p.get(), "main.py"));
    EXPECT_FALSE(px_project_has_file(p.get(), "pkg"));
    EXPECT_FALSE(px_project_has_file(p.get(), "util.py"));
    EXPECT_FALSE(px_project_has_file(p.get(), "nope.py"));
}

TEST(TarParse, AcceptsUstarPaxAndGnuWithLongNames) {
    std::string long_name = std::string(150, 'n') + "/x.py";
    for (int format : {ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE,
                       ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FORMAT_TAR_GNUTAR}) {
        SCOPED_TRACE(format);
        Project p = Parse(TarBuilder(format).File("main.py", "1").File(long_name, "2").Finish());
        ASSERT_TRUE(p);
        EXPECT_EQ((std::vector<std::string>{"main.py", long_name}), Paths(p.get()));
    }
}

TEST(TarParse, NormalisesPaths) {
    std::string tar =
        TarBuilder().Dir("./").Dir("./a//b/").File("./a//b/./c.py", "c").Dir("./x/").Finish();
    Project p = Parse(tar);
    ASSERT_TRUE(p);
    EXPECT_EQ((std::vector<std::string>{"a/b", "a/b/c.py", "x"}), Paths(p.get()));
}

TEST(TarParse, OnlyEndBlocksIsAnEmptyProject) {
    Project p = Parse(EndBlocks());
    ASSERT_TRUE(p);
    EXPECT_EQ(0u, p->n_entries);
}

TEST(TarParse, NonAsciiNamesKeepTheirBytes) {
    Project p = Parse(TarBuilder().File("caf\xc3\xa9.py", "1").Finish());
    ASSERT_TRUE(p);
    EXPECT_EQ((std::vector<std::string>{"caf\xc3\xa9.py"}), Paths(p.get()));
    /* Python's tarfile puts a UTF-8 pax "path" record before the header. */
    p = Parse(PaxHeader({"path=caf\xc3\xa9/\xe2\x82\xac.py"}) + RawFile("caf_.py", "2") +
              EndBlocks());
    ASSERT_TRUE(p);
    EXPECT_EQ((std::vector<std::string>{"caf\xc3\xa9/\xe2\x82\xac.py"}), Paths(p.get()));
}

TEST(TarParse, PaxPathsAreCheckedToo) {
    EXPECT_HAS(Reject(PaxHeader({"path=../../evil.py"}) + RawFile("good.py", "x") + EndBlocks()),
               "'../../evil.py': path has a '..' component");
    EXPECT_HAS(Reject(PaxHeader({"linkpath=/etc"}) + RawHeader("l", '2', 0, "ok") + EndBlocks()),
               "'l': symbolic link target '/etc' is absolute");
}

/* libarchive keeps pax and GNU long-name values as C strings: "a\0b" would
 * silently become "a". Such a value is refused like any string with a NUL. */
TEST(TarParse, NulInAPaxOrLongNameValueIsRefused) {
    using std::string;
    EXPECT_HAS(Reject(PaxHeader({"mtime=1", string("path=a\0b.py", 12)}) + RawFile("x.py", "1") +
                      EndBlocks()),
               "pax record 'path' contains a NUL byte");
    EXPECT_HAS(Reject(PaxHeader({string("linkpath=ok\0/etc", 17)}) + RawHeader("l", '2', 0, "ok") +
                      EndBlocks()),
               "pax record 'linkpath' contains a NUL byte");
    /* The second entry's header, after a first entry with data. */
    EXPECT_HAS(Reject(RawFile("first.py", string(700, 'x')) + PaxHeader({string("path=b\0c", 8)}) +
                      RawFile("y.py", "2") + EndBlocks()),
               "tar entry 2: pax record 'path' contains a NUL byte");
    /* A GNU long name ('L') is NUL-terminated; a NUL before its end is not. */
    string longname("a\0b", 3);
    longname += '\0';
    string gnu = RawHeader("././@LongLink", 'L', longname.size()) + longname;
    gnu.append(512 - longname.size(), '\0');
    EXPECT_HAS(Reject(gnu + RawFile("z.py", "3") + EndBlocks()),
               "GNU long name contains a NUL byte");
    /* Well-formed ones still parse, and binary xattr values are no strings. */
    string ok_name("long/name.py");
    ok_name += '\0';
    string ok_gnu = RawHeader("././@LongLink", 'L', ok_name.size()) + ok_name;
    ok_gnu.append(512 - ok_name.size(), '\0');
    Project p = Parse(ok_gnu + RawFile("n.py", "4") +
                      PaxHeader({"path=p.py", string("SCHILY.xattr.user.x=\0\1", 22)}) +
                      RawFile("q.py", "5") + EndBlocks());
    ASSERT_TRUE(p);
    EXPECT_EQ((std::vector<std::string>{"long/name.py", "p.py"}), Paths(p.get()));
}

/* A pax header that is not a sequence of "LEN key=value\n" records. */
TEST(TarParse, MalformedPaxRecordsAreRefused) {
    for (const std::string &body : {std::string("5 a=b"), std::string("x path=a\n"),
                                    std::string("99 path=a\n"), std::string("7 path\n")}) {
        std::string h = RawHeader("././@PaxHeader", 'x', body.size()) + body;
        h.append(512 - body.size(), '\0');
        EXPECT_HAS(Reject(h + RawFile("x.py", "1") + EndBlocks()), "pax") << body;
    }
}

TEST(TarParse, ModeZeroGetsDefaults) {
    Project p = Parse(TarBuilder().Dir("d", 0).File("d/f", "f", 0).Finish());
    ASSERT_TRUE(p);
    EXPECT_EQ(0755u, p->entries[0].mode);
    EXPECT_EQ(0644u, p->entries[1].mode);
}

TEST(TarParse, SpecialModeBitsAreDropped) {
    Project p = Parse(TarBuilder().File("f", "f", 04755).Dir("d", 01777).Finish());
    ASSERT_TRUE(p);
    EXPECT_EQ(0755u, p->entries[0].mode);
    EXPECT_EQ(0777u, p->entries[1].mode);
}

/* ---- path rules -------------------------------------------------------- */

TEST(TarPaths, RejectsAbsolutePaths) {
    EXPECT_HAS(Reject(TarBuilder().File("/etc/passwd", "x").Finish()),
               "tar entry 1: '/etc/passwd': absolute path");
}

TEST(TarPaths, RejectsDotDotComponents) {
    for (const char *path : {"../x.py", "a/../../x.py", "a/..", "..", "a/../b"}) {
        SCOPED_TRACE(path);
        EXPECT_HAS(Reject(TarBuilder().File("ok.py", "1").File(path, "x").Finish()),
                   std::string("tar entry 2: '") + path + "': path has a '..' component");
    }
}

TEST(TarPaths, DotDotInsideANameIsFine) {
    Project p = Parse(TarBuilder().File("a..b/..c", "x").Finish());
    ASSERT_TRUE(p);
    EXPECT_STREQ("a..b/..c", p->entries[0].path);
}

TEST(TarPaths, RejectsControlCharacters) {
    EXPECT_HAS(Reject(TarBuilder().File("a\nb.py", "x").Finish()),
               "'a\\x0ab.py': path contains a control character");
    EXPECT_HAS(Reject(TarBuilder().File("a\x7f", "x").Finish()), "control character");
    EXPECT_HAS(Reject(TarBuilder().File("\x1b[2J.py", "x").Finish()), "control character");
}

TEST(TarPaths, RejectsAnEmptyName) {
    std::string msg = Reject(RawHeader("", '0', 0) + EndBlocks());
    EXPECT_HAS(msg, "tar entry 1");
}

TEST(TarPaths, RejectsTheRootAsAFile) {
    EXPECT_HAS(Reject(RawHeader(".", '0', 0) + EndBlocks()), "'.': not a file path");
    EXPECT_HAS(Reject(RawHeader("./.", '0', 0) + EndBlocks()), "'./.': not a file path");
    EXPECT_HAS(Reject(TarBuilder().Symlink(".", "a").Finish()), "root");
}

TEST(TarPaths, PathLengthLimit) {
    px_tar_limits l = Defaults();
    l.max_path_len = 20;
    std::string ok(20, 'a');
    std::string too_long(21, 'a');
    EXPECT_TRUE(Parse(TarBuilder().File(ok, "x").Finish(), &l));
    EXPECT_HAS(Reject(TarBuilder().File(too_long, "x").Finish(), &l),
               "'" + too_long + "': path longer than 20 bytes");
    /* The limit applies to the normalised path. */
    EXPECT_TRUE(Parse(TarBuilder().File("./" + ok, "x").Finish(), &l));
}

TEST(TarPaths, FourKilobyteNames) {
    std::string name = std::string(4096 - 3, 'n') + ".py";
    std::string tar = TarBuilder().File(name, "x").Finish();
    std::string msg = Reject(tar);
    EXPECT_HAS(msg, "path longer than 1024 bytes");
    EXPECT_HAS(msg, "nnnn..."); /* the message shows a prefix, not 4 KiB */
    EXPECT_LT(strlen(msg.c_str()), 300u);

    px_tar_limits l = Defaults();
    l.max_path_len = 4096;
    Project p = Parse(tar, &l);
    ASSERT_TRUE(p);
    EXPECT_EQ(name, p->entries[0].path);
}

TEST(TarPaths, PathDepthLimit) {
    px_tar_limits l = Defaults();
    l.max_path_depth = 3;
    EXPECT_TRUE(Parse(TarBuilder().File("a/b/c", "x").Finish(), &l));
    EXPECT_TRUE(Parse(TarBuilder().File("./a//b/./c", "x").Finish(), &l));
    EXPECT_HAS(Reject(TarBuilder().File("a/b/c/d", "x").Finish(), &l),
               "'a/b/c/d': path deeper than 3 components");
    EXPECT_HAS(Reject(TarBuilder().Dir("a/b/c/d").Finish(), &l), "deeper than 3");
}

TEST(TarPaths, DefaultDepthLimit) {
    std::string deep;
    for (int i = 0; i < 33; i++)
        deep += "d/";
    deep += "f";
    EXPECT_HAS(Reject(TarBuilder().File(deep, "x").Finish()), "deeper than 32 components");
}

/* ---- duplicates and the tree ------------------------------------------- */

TEST(TarTree, RejectsDuplicateFiles) {
    EXPECT_HAS(Reject(TarBuilder().File("a.py", "1").File("a.py", "2").Finish()),
               "'a.py': duplicate path");
    EXPECT_HAS(Reject(TarBuilder().File("d/a.py", "1").File("./d//a.py", "2").Finish()),
               "'d/a.py': duplicate path");
    EXPECT_HAS(Reject(TarBuilder().Symlink("l", "a").Symlink("l", "b").Finish()),
               "'l': duplicate path");
}

TEST(TarTree, DirectoryListedTwiceIsFine) {
    Project p = Parse(
        TarBuilder().Dir("d", 0700).File("d/f", "f").Dir("d/", 0755).Dir("./d").Finish());
    ASSERT_TRUE(p);
    EXPECT_EQ((std::vector<std::string>{"d", "d/f"}), Paths(p.get()));
    EXPECT_EQ(0700u, p->entries[0].mode); /* the first listing wins */
}

TEST(TarTree, ImpliedThenListedDirectoryIsFine) {
    Project p = Parse(TarBuilder().File("a/b/c.py", "c").Dir("a/b").Dir("a").Finish());
    ASSERT_TRUE(p);
    EXPECT_EQ((std::vector<std::string>{"a/b/c.py", "a/b", "a"}), Paths(p.get()));
}

TEST(TarTree, RejectsAFileAndADirectoryWithOnePath) {
    EXPECT_HAS(Reject(TarBuilder().File("x", "1").Dir("x").Finish()),
               "'x': both a file and a directory");
    EXPECT_HAS(Reject(TarBuilder().Dir("x").File("x", "1").Finish()),
               "'x': both a directory and a file");
    EXPECT_HAS(Reject(TarBuilder().Dir("x").Symlink("x/", "y").Finish()),
               "'x': both a directory and a symbolic link");
}

TEST(TarTree, RejectsPathsBelowAFile) {
    EXPECT_HAS(Reject(TarBuilder().File("a", "1").File("a/b.py", "2").Finish()),
               "'a/b.py': parent 'a' is a file");
    EXPECT_HAS(Reject(TarBuilder().File("a/b/c.py", "2").File("a", "1").Finish()),
               "'a/b/c.py': parent 'a' is a file");
    /* Siblings that sort between "a" and "a/..." byte-wise do not hide it. */
    EXPECT_HAS(Reject(TarBuilder()
                          .File("a", "1")
                          .File("a-b", "3")
                          .File("a.c", "4")
                          .File("a/x", "2")
                          .Finish()),
               "'a/x': parent 'a' is a file");
}

TEST(TarTree, RejectsPathsThroughASymlink) {
    /* Unpacking "l/x" would write through the link. */
    EXPECT_HAS(Reject(TarBuilder().Dir("d").Symlink("l", "d").File("l/x.py", "1").Finish()),
               "'l/x.py': parent 'l' is a symbolic link");
}

TEST(TarTree, SimilarNamesAreNotDuplicates) {
    Project p = Parse(
        TarBuilder().File("a", "1").File("a.py", "2").File("a-", "3").File("b/a", "4").Finish());
    ASSERT_TRUE(p);
    EXPECT_EQ(4u, p->n_entries);
}

/* ---- symbolic links ---------------------------------------------------- */

TEST(TarSymlinks, AcceptsLinksInsideTheRoot) {
    Project p = Parse(TarBuilder()
                          .File("lib/x.py", "x")
                          .Symlink("a/b/c", "../../lib/x.py")
                          .Symlink("a/up", "..")
                          .Symlink("here", ".")
                          .Symlink("dangling", "nowhere/yet")
                          .Symlink("d/e", "./../lib")
                          .Finish());
    ASSERT_TRUE(p);
    EXPECT_EQ(6u, p->n_entries);
    EXPECT_STREQ("../../lib/x.py", Find(p.get(), "a/b/c")->link_target);
}

TEST(TarSymlinks, RejectsEscapes) {
    EXPECT_HAS(Reject(TarBuilder().Symlink("a", "../../etc").Finish()),
               "tar entry 1: 'a': symbolic link target '../../etc' escapes the root");
    EXPECT_HAS(Reject(TarBuilder().Symlink("a/b", "../..").Finish()),
               "'a/b': symbolic link target '../..' escapes the root");
    EXPECT_HAS(Reject(TarBuilder().Symlink("a", "..").Finish()), "escapes the root");
    EXPECT_HAS(Reject(TarBuilder().Symlink("./a/b/", "./../../x").Finish()), "escapes the root");
}

TEST(TarSymlinks, RejectsAbsoluteTargets) {
    EXPECT_HAS(Reject(TarBuilder().Symlink("passwd", "/etc/passwd").Finish()),
               "'passwd': symbolic link target '/etc/passwd' is absolute");
    EXPECT_HAS(Reject(TarBuilder().Symlink("root", "/").Finish()), "is absolute");
}

TEST(TarSymlinks, RejectsDotDotAfterAName) {
    /* Lexically inside, but "d/l" could be a link itself: only a leading
     * run of ".." is allowed. */
    EXPECT_HAS(Reject(TarBuilder().Symlink("x", "d/l/..").Finish()),
               "'x': symbolic link target 'd/l/..' has '..' after a name");
    EXPECT_HAS(Reject(TarBuilder().Symlink("x", "a/../b").Finish()), "after a name");
}

TEST(TarSymlinks, RejectsEmptyAndControlTargets) {
    EXPECT_HAS(Reject(RawHeader("l", '2', 0, "") + EndBlocks()),
               "'l': symbolic link with an empty target");
    EXPECT_HAS(Reject(TarBuilder().Symlink("l", "a\nb").Finish()), "control character");
}

TEST(TarSymlinks, TargetLengthIsLimited) {
    px_tar_limits l = Defaults();
    l.max_path_len = 10;
    EXPECT_HAS(Reject(TarBuilder().Symlink("l", std::string(11, 't')).Finish(), &l),
               "symbolic link target longer than 10 bytes");
}

/* ---- other entry types ------------------------------------------------- */

TEST(TarTypes, RejectsHardLinks) {
    EXPECT_HAS(Reject(TarBuilder().File("a.py", "1").Hardlink("b.py", "a.py").Finish()),
               "tar entry 2: 'b.py': hard link (to 'a.py') not allowed");
    EXPECT_HAS(Reject(TarBuilder().Hardlink("shadow", "/etc/shadow").Finish()),
               "'shadow': hard link (to '/etc/shadow') not allowed");
}

TEST(TarTypes, RejectsDevicesAndFifos) {
    EXPECT_HAS(Reject(TarBuilder().Special("null", AE_IFCHR).Finish()),
               "'null': character device not allowed");
    EXPECT_HAS(Reject(TarBuilder().Special("sda", AE_IFBLK).Finish()),
               "'sda': block device not allowed");
    EXPECT_HAS(Reject(TarBuilder().Special("pipe", AE_IFIFO).Finish()), "'pipe': FIFO not allowed");
    EXPECT_HAS(Reject(RawHeader("dev", '3', 0) + EndBlocks()), "character device");
}

/* ---- limits ------------------------------------------------------------ */

TEST(TarLimits, EntryCount) {
    px_tar_limits l = Defaults();
    l.max_entries = 3;
    EXPECT_TRUE(Parse(TarBuilder().Dir("d").File("d/a", "").File("d/b", "").Finish(), &l));
    EXPECT_HAS(
        Reject(TarBuilder().Dir("d").File("d/a", "").File("d/b", "").File("c", "").Finish(), &l),
        "more than 3 entries");
    /* Skipped root entries count too: they still cost work. */
    EXPECT_HAS(Reject(TarBuilder().Dir("./").Dir("./").Dir(".").Dir("./").Finish(), &l),
               "more than 3 entries");
}

TEST(TarLimits, AHundredThousandEntries) {
    TarBuilder b(ARCHIVE_FORMAT_TAR_USTAR);
    for (int i = 0; i < 100000; i++)
        b.File("d" + std::to_string(i % 100) + "/f" + std::to_string(i), "");
    std::string tar = b.Finish();
    EXPECT_HAS(Reject(tar), "more than 10000 entries");

    px_tar_limits l = Defaults();
    l.max_entries = 100000;
    Project p = Parse(tar, &l);
    ASSERT_TRUE(p);
    EXPECT_EQ(100000u, p->n_entries);
    l.max_entries = 99999;
    EXPECT_HAS(Reject(tar, &l), "more than 99999 entries");
}

TEST(TarLimits, TotalBytes) {
    px_tar_limits l = Defaults();
    l.max_total_bytes = 10;
    EXPECT_TRUE(Parse(TarBuilder().File("a", "12345").File("b", "67890").Finish(), &l));
    EXPECT_HAS(Reject(TarBuilder().File("a", "12345").File("b", "678901").Finish(), &l),
               "tar entry 2: 'b': 6 bytes exceed the limit of 10 unpacked bytes in total");
    EXPECT_HAS(Reject(TarBuilder().File("big", std::string(11, 'x')).Finish(), &l),
               "'big': 11 bytes exceed the limit");
}

TEST(TarLimits, DefaultTotalBytes) {
    /* One byte over 256 MiB is refused from the header alone. */
    std::string tar = RawHeader("big.bin", '0', (UINT64_C(256) << 20) + 1) + EndBlocks();
    EXPECT_HAS(Reject(tar), "'big.bin': 268435457 bytes exceed the limit of 268435456");
}

TEST(TarLimits, TarBombIsRefusedFromItsHeader) {
    /* A header claiming 10 GiB followed by almost nothing: refused before
     * any allocation (under ASan a 10 GiB malloc would abort the test). */
    std::string tar = RawHeader("bomb.bin", '0', UINT64_C(10) << 30) + std::string(4096, 'A');
    EXPECT_HAS(Reject(tar), "'bomb.bin': 10737418240 bytes exceed the limit");

    px_tar_limits l = Defaults();
    l.max_total_bytes = UINT64_MAX;
    EXPECT_HAS(Reject(tar, &l), "'bomb.bin': truncated archive (entry claims 10737418240 bytes)");
}

TEST(TarLimits, FileListLimits) {
    px_tar_limits l = Defaults();
    l.max_entries = 2;
    l.max_total_bytes = 4;
    l.max_path_len = 5;
    l.max_path_depth = 2;
    EXPECT_HAS(RejectFiles({{"a", "", 0}, {"b", "", 0}, {"c", "", 0}}, &l),
               "3 files: more than 2 entries");
    EXPECT_HAS(RejectFiles({{"a", "123", 0}, {"b", "45", 0}}, &l),
               "file 1: 'b': 2 bytes exceed the limit of 4");
    EXPECT_HAS(RejectFiles({{"abcdef", "", 0}}, &l), "file 0: 'abcdef': path longer than 5");
    EXPECT_HAS(RejectFiles({{"a/b/c", "", 0}}, &l), "'a/b/c': path deeper than 2");
    px_error err = PX_ERROR_INIT;
    EXPECT_TRUE(FromFiles({{"a/b", "1234", 0}, {"./c", "", 0}}, &err, &l)) << err.msg;
}

/* ---- garbage ----------------------------------------------------------- */

TEST(TarGarbage, RejectsEmptyInput) {
    EXPECT_HAS(Reject(""), "not a tar archive");
    px_error err = PX_ERROR_INIT;
    EXPECT_FALSE(px_project_from_tar(nullptr, 0, nullptr, &err));
    EXPECT_EQ(PX_E_INVALID, err.code);
}

TEST(TarGarbage, RejectsRandomBytes) {
    std::string junk;
    uint32_t x = 12345;
    for (int i = 0; i < 4096; i++) {
        x = x * 1103515245u + 12345u;
        junk.push_back(static_cast<char>(x >> 24));
    }
    EXPECT_HAS(Reject(junk), "not a tar archive");
    EXPECT_HAS(Reject("print('hello')\n"), "not a tar archive");
}

TEST(TarGarbage, RejectsCompressedArchives) {
    std::string gz =
        TarBuilder(ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, true).File("main.py", "1").Finish();
    EXPECT_HAS(Reject(gz), "gzip-compressed archive: only uncompressed tar is accepted");
    EXPECT_HAS(Reject(std::string("BZh91AY&SY") + std::string(100, '\0')), "bzip2-compressed");
    EXPECT_HAS(Reject(std::string("\xfd"
                                  "7zXZ\0\0",
                                  7) +
                      std::string(100, '\0')),
               "xz-compressed");
    EXPECT_HAS(Reject(std::string("\x28\xb5\x2f\xfd") + std::string(100, '\0')), "zstd-compressed");
}

TEST(TarGarbage, NamesThatLookLikeCompressionMagicAreFine) {
    for (const char *name : {"BZh91.py", "LZIP", "(\xb5/\xfd.py"}) {
        SCOPED_TRACE(name);
        Project p = Parse(TarBuilder(ARCHIVE_FORMAT_TAR_USTAR).File(name, "1").Finish());
        ASSERT_TRUE(p);
        EXPECT_STREQ(name, p->entries[0].path);
    }
}

TEST(TarGarbage, RejectsTruncatedArchives) {
    std::string data(3000, 'd');
    std::string tar =
        TarBuilder(ARCHIVE_FORMAT_TAR_USTAR).File("a.py", "1").File("b.bin", data).Finish();
    /* Cut inside b.bin's data, inside its header, and inside a's data block. */
    for (size_t cut : {size_t{1024 + 512 + 100}, size_t{1024 + 200}, size_t{600}, size_t{100}}) {
        SCOPED_TRACE(cut);
        Reject(tar.substr(0, cut));
    }
    EXPECT_HAS(Reject(tar.substr(0, 1024 + 512 + 100)), "tar entry 2");
}

TEST(TarGarbage, RejectsABadChecksum) {
    std::string tar =
        TarBuilder(ARCHIVE_FORMAT_TAR_USTAR).File("a.py", "1").File("b.py", "2").Finish();
    tar[1024 + 10] ^= 0x55; /* inside the second header's name */
    EXPECT_HAS(Reject(tar), "tar entry 2");
    std::string first = TarBuilder(ARCHIVE_FORMAT_TAR_USTAR).File("a.py", "1").Finish();
    first[0] ^= 0x55;
    Reject(first);
}

TEST(TarGarbage, ErrorMessagesEscapeClientBytes) {
    std::string msg = Reject(TarBuilder().File("/\xff'\\", "x").Finish());
    EXPECT_HAS(msg, "'/\\xff\\x27\\x5c': absolute path");
}

/* ---- file lists -------------------------------------------------------- */

TEST(FileList, ReadsAndNormalises) {
    px_error err = PX_ERROR_INIT;
    Project p = FromFiles(
        {{"./main.py", "print(1)\n", 0}, {"pkg//mod.py", "X=1", 0755}, {"bin/run", "#!", 0100700}},
        &err);
    ASSERT_TRUE(p) << err.msg;
    EXPECT_EQ((std::vector<std::string>{"main.py", "pkg/mod.py", "bin/run"}), Paths(p.get()));
    EXPECT_EQ(0644u, p->entries[0].mode);
    EXPECT_EQ(0755u, p->entries[1].mode);
    EXPECT_EQ(0700u, p->entries[2].mode);
    EXPECT_EQ("print(1)\n", Data(p->entries[0]));
    EXPECT_EQ(14u, p->total_bytes);
}

TEST(FileList, EmptyListIsAnEmptyProject) {
    px_error err = PX_ERROR_INIT;
    Project p(px_project_from_files(nullptr, 0, nullptr, &err));
    ASSERT_TRUE(p) << err.msg;
    EXPECT_EQ(0u, p->n_entries);
}

TEST(FileList, RejectsNulInAPath) {
    std::string path("main.py\0.txt", 12);
    EXPECT_HAS(RejectFiles({{"ok.py", "", 0}, {path, "x", 0}}),
               "file 1: 'main.py\\x00.txt': path contains a NUL byte");
}

TEST(FileList, RejectsBadPaths) {
    EXPECT_HAS(RejectFiles({{"", "x", 0}}), "file 0: empty path");
    EXPECT_HAS(RejectFiles({{"./", "x", 0}}), "'./': not a file path");
    EXPECT_HAS(RejectFiles({{"//", "x", 0}}), "absolute path");
    EXPECT_HAS(RejectFiles({{"/tmp/x.py", "x", 0}}), "'/tmp/x.py': absolute path");
    EXPECT_HAS(RejectFiles({{"a/../../x.py", "x", 0}}), "'..' component");
    EXPECT_HAS(RejectFiles({{"a\tb", "x", 0}}), "control character");
}

TEST(FileList, RejectsDuplicatesAndFilesUsedAsDirectories) {
    EXPECT_HAS(RejectFiles({{"a.py", "1", 0}, {"./a.py", "2", 0}}), "'a.py': duplicate path");
    EXPECT_HAS(RejectFiles({{"a", "1", 0}, {"a/b", "2", 0}}), "'a/b': parent 'a' is a file");
}

/* ---- entrypoint -------------------------------------------------------- */

TEST(Entrypoint, PrefersMainPy) {
    Project p = Parse(
        TarBuilder().File("a.py", "").File("__main__.py", "").File("main.py", "").Finish());
    ASSERT_TRUE(p);
    EXPECT_EQ("main.py", Entrypoint(p.get(), nullptr));
    EXPECT_EQ("main.py", Entrypoint(p.get(), ""));
}

TEST(Entrypoint, ThenDunderMainAtTheRoot) {
    Project p = Parse(
        TarBuilder().File("a.py", "").File("pkg/main.py", "").File("__main__.py", "").Finish());
    ASSERT_TRUE(p);
    EXPECT_EQ("__main__.py", Entrypoint(p.get(), nullptr));
}

TEST(Entrypoint, ThenTheFirstPyFileInArchiveOrder) {
    Project p = Parse(TarBuilder()
                          .File("README", "")
                          .Dir("z.py")
                          .Symlink("y.py", "README")
                          .File("sub/__main__.py", "")
                          .File("a.py", "")
                          .Finish());
    ASSERT_TRUE(p);
    EXPECT_EQ("sub/__main__.py", Entrypoint(p.get(), nullptr));
}

TEST(Entrypoint, MainPyMustBeARegularFile) {
    Project p = Parse(TarBuilder().File("b.py", "").Symlink("main.py", "b.py").Finish());
    ASSERT_TRUE(p);
    EXPECT_EQ("b.py", Entrypoint(p.get(), nullptr));
}

TEST(Entrypoint, NoneFound) {
    Project p = Parse(TarBuilder().File("README.md", "").Dir("x.py").Finish());
    ASSERT_TRUE(p);
    EXPECT_HAS(EntrypointError(p.get(), nullptr), "no entrypoint");
    Project empty = Parse(EndBlocks());
    EXPECT_HAS(EntrypointError(empty.get(), nullptr), "no entrypoint");
}

TEST(Entrypoint, RequestedIsNormalised) {
    Project p = Parse(TarBuilder().File("main.py", "").File("app/run.py", "").Finish());
    ASSERT_TRUE(p);
    EXPECT_EQ("app/run.py", Entrypoint(p.get(), "app/run.py"));
    EXPECT_EQ("app/run.py", Entrypoint(p.get(), "./app//run.py"));
    EXPECT_EQ("main.py", Entrypoint(p.get(), "./main.py"));
    /* The returned pointer is the project's own string. */
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(p->entries[1].path, px_project_entrypoint(p.get(), "./app/run.py", &err));
}

TEST(Entrypoint, RequestedMustBeARegularFileOfTheProject) {
    Project p = Parse(
        TarBuilder().File("main.py", "").Dir("pkg").Symlink("link.py", "main.py").Finish());
    ASSERT_TRUE(p);
    EXPECT_HAS(EntrypointError(p.get(), "other.py"),
               "entrypoint 'other.py' is not among the files");
    EXPECT_HAS(EntrypointError(p.get(), "pkg"), "entrypoint 'pkg' is a directory");
    EXPECT_HAS(EntrypointError(p.get(), "link.py"), "entrypoint 'link.py' is a symbolic link");
    EXPECT_HAS(EntrypointError(p.get(), "/work/main.py"), "entrypoint: '/work/main.py': absolute");
    EXPECT_HAS(EntrypointError(p.get(), "../main.py"), "'..' component");
    EXPECT_HAS(EntrypointError(p.get(), "./"), "entrypoint './' is not among the files");
}

/* ---- pack -------------------------------------------------------------- */

TEST(Pack, RoundTripGivesTheSameEntries) {
    std::string long_dir = std::string(120, 'L');
    std::string long_target = "../" + long_dir + "/" + std::string(200, 't');
    std::string binary;
    for (int i = 0; i < 256; i++)
        binary.push_back(static_cast<char>(i));
    Project p = Parse(TarBuilder()
                          .Dir("pkg", 0700)
                          .File("pkg/__init__.py", "", 0600)
                          .File("main.py", "import pkg\n", 0755)
                          .File("data.bin", binary + std::string(70000, 'z'))
                          .File(long_dir + "/" + std::string(300, 'f') + ".py", "long")
                          .Symlink("pkg/long", long_target)
                          .Symlink("m.py", "main.py")
                          .File("caf\xc3\xa9/\xff\xfe.py", "latin")
                          .Finish());
    ASSERT_TRUE(p);
    std::string packed = Pack(p.get());
    EXPECT_EQ(0u, packed.size() % 512);
    Project again = Parse(packed);
    ASSERT_TRUE(again);
    ExpectSameEntries(p.get(), again.get());
    /* And once more: packing is deterministic. */
    EXPECT_EQ(packed, Pack(again.get()));
}

TEST(Pack, FileListRoundTrip) {
    px_error err = PX_ERROR_INIT;
    Project p = FromFiles({{"main.py", "print(1)\n", 0}, {"a/b/c.py", "", 0750}}, &err);
    ASSERT_TRUE(p) << err.msg;
    Project again = Parse(Pack(p.get()));
    ASSERT_TRUE(again);
    ExpectSameEntries(p.get(), again.get());
}

TEST(Pack, EmptyProject) {
    Project p = Parse(EndBlocks());
    ASSERT_TRUE(p);
    std::string packed = Pack(p.get());
    EXPECT_EQ(1024u, packed.size());
    Project again = Parse(packed);
    ASSERT_TRUE(again);
    EXPECT_EQ(0u, again->n_entries);
}

TEST(Pack, WritesRootOwnedEntriesWithTimeZero) {
    Project p = Parse(TarBuilder().Dir("d").File("d/f.py", "x", 0640).Symlink("l", "d").Finish());
    ASSERT_TRUE(p);
    std::string packed = Pack(p.get());

    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    ASSERT_EQ(ARCHIVE_OK, archive_read_open_memory(a, packed.data(), packed.size()));
    struct archive_entry *e;
    int n = 0;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        n++;
        EXPECT_EQ(0, archive_entry_uid(e));
        EXPECT_EQ(0, archive_entry_gid(e));
        EXPECT_EQ(0, archive_entry_mtime(e));
        /* ustar or pax interchange, readable by any POSIX tar. */
        EXPECT_EQ(ARCHIVE_FORMAT_TAR, archive_format(a) & ARCHIVE_FORMAT_BASE_MASK);
        if (std::string("d/f.py") == archive_entry_pathname(e)) {
            EXPECT_EQ(static_cast<mode_t>(AE_IFREG | 0640), archive_entry_mode(e));
        }
        if (std::string("l") == archive_entry_pathname(e)) {
            EXPECT_STREQ("d", archive_entry_symlink(e));
        }
    }
    archive_read_free(a);
    EXPECT_EQ(3, n);
}

} // namespace
