// Runs one kernel of crates/models/src/ops/cuda/kernels.cu (the real file, compiled as host C++
// through shim.h) over a simulated launch, for tests/kernels_on_host.rs.
//
//     driver KERNEL GRID BLOCK DIR SCALARS...
//
// reads the kernel's input arrays from DIR/<name>.bin (raw little-endian), calls the kernel once
// per (block, thread) of a GRID x BLOCK launch, block by block and thread by thread (legal:
// the kernels never synchronise or share memory), and writes the output arrays to
// DIR/<name>.out. Integer scalars are decimal or 0x-hex; float scalars are their IEEE bit
// patterns (0x-hex), so nothing is lost in parsing. Output buffers start filled with 0xFF
// bytes (a NaN no test input contains), so an element a kernel fails to write shows.
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "shim.h"
#include "kernels.cu"

namespace {

[[noreturn]] void fail(const std::string& msg) {
    std::fprintf(stderr, "driver: %s\n", msg.c_str());
    std::exit(2);
}

std::string dir;

template <typename T>
std::vector<T> read(const char* name, u64 count) {
    const std::string path = dir + "/" + name + ".bin";
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) fail("cannot open " + path);
    std::vector<T> v(count);
    const size_t got = count ? std::fread(v.data(), sizeof(T), count, f) : 0;
    const bool extra = std::fgetc(f) != EOF;
    std::fclose(f);
    if (got != count || extra)
        fail(path + ": expected exactly " + std::to_string(count) + " elements");
    return v;
}

template <typename T>
void write(const char* name, const std::vector<T>& v) {
    const std::string path = dir + "/" + name + ".out";
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) fail("cannot create " + path);
    if (!v.empty() && std::fwrite(v.data(), sizeof(T), v.size(), f) != v.size())
        fail("cannot write " + path);
    if (std::fclose(f) != 0) fail("cannot write " + path);
}

template <typename T>
std::vector<T> sentinel(u64 count) {
    std::vector<T> v(count);
    if (count) std::memset(v.data(), 0xFF, count * sizeof(T));
    return v;
}

u64 parse(const char* s) {
    char* end = nullptr;
    errno = 0;
    const u64 v = std::strtoull(s, &end, 0);
    if (errno != 0 || end == s || *end != '\0') fail(std::string("bad number ") + s);
    return v;
}

float f32_bits(const char* s) {
    const uint32_t b = (uint32_t)parse(s);
    float f;
    std::memcpy(&f, &b, sizeof f);
    return f;
}

double f64_bits(const char* s) {
    const u64 b = parse(s);
    double d;
    std::memcpy(&d, &b, sizeof d);
    return d;
}

// A GRID x BLOCK launch, one simulated thread at a time.
template <typename F>
void launch(unsigned grid, unsigned block, F kernel) {
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    for (unsigned b = 0; b < grid; ++b) {
        for (unsigned t = 0; t < block; ++t) {
            blockIdx = {b, 0, 0};
            threadIdx = {t, 0, 0};
            kernel();
        }
    }
}

// Max-pool forward or backward; scalars: planes height width out_h out_w kernel stride pad.
template <typename T, typename Fwd, typename Bwd>
void pool(bool forward, unsigned grid, unsigned block, char** a, Fwd fwd, Bwd bwd) {
    const u64 planes = parse(a[0]);
    int d[7];
    for (int i = 0; i < 7; ++i) d[i] = (int)parse(a[1 + i]);
    const u64 in = planes * d[0] * d[1], out = planes * d[2] * d[3];
    const auto x = read<T>("x", in);
    if (forward) {
        auto y = sentinel<T>(out);
        launch(grid, block, [&] {
            fwd(x.data(), y.data(), planes, d[0], d[1], d[2], d[3], d[4], d[5], d[6]);
        });
        write("y", y);
    } else {
        const auto dy = read<T>("dy", out);
        auto dx = sentinel<T>(in);
        launch(grid, block, [&] {
            bwd(x.data(), dy.data(), dx.data(), planes, d[0], d[1], d[2], d[3], d[4], d[5], d[6]);
        });
        write("dx", dx);
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 5) fail("usage: driver KERNEL GRID BLOCK DIR SCALARS...");
    const std::string k = argv[1];
    const unsigned grid = (unsigned)parse(argv[2]);
    const unsigned block = (unsigned)parse(argv[3]);
    if (grid == 0 || block == 0) fail("empty launch");
    dir = argv[4];
    char** a = argv + 5;
    const int nargs = argc - 5;
    auto need = [&](int n) {
        if (nargs != n) fail(k + " takes " + std::to_string(n) + " scalars");
    };

    if (k == "max_pool_fwd_f32" || k == "max_pool_bwd_f32") {
        need(8);
        pool<float>(k == "max_pool_fwd_f32", grid, block, a, allconv_max_pool_fwd_f32,
                    allconv_max_pool_bwd_f32);
    } else if (k == "max_pool_fwd_f64" || k == "max_pool_bwd_f64") {
        need(8);
        pool<double>(k == "max_pool_fwd_f64", grid, block, a, allconv_max_pool_fwd_f64,
                     allconv_max_pool_bwd_f64);
    } else if (k == "relu_mask_f32") {
        need(1);
        const u64 n = parse(a[0]);
        const auto dy = read<float>("dy", n), y = read<float>("y", n);
        auto out = sentinel<float>(n);
        launch(grid, block, [&] { allconv_relu_mask_f32(dy.data(), y.data(), out.data(), n); });
        write("out", out);
    } else if (k == "relu_rule_f32") {
        need(2);
        const u64 n = parse(a[0]);
        const unsigned int rule = static_cast<unsigned int>(parse(a[1]));
        const auto dy = read<float>("dy", n), y = read<float>("y", n);
        auto out = sentinel<float>(n);
        launch(grid, block,
               [&] { allconv_relu_rule_f32(dy.data(), y.data(), out.data(), n, rule); });
        write("out", out);
    } else if (k == "dropout_f32" || k == "dropout_f64") {
        need(4);
        const u64 n = parse(a[0]), key = parse(a[1]), threshold = parse(a[2]);
        if (k == "dropout_f32") {
            const float scale = f32_bits(a[3]);
            const auto x = read<float>("x", n);
            auto y = sentinel<float>(n);
            launch(grid, block,
                   [&] { allconv_dropout_f32(x.data(), y.data(), n, key, threshold, scale); });
            write("y", y);
        } else {
            const double scale = f64_bits(a[3]);
            const auto x = read<double>("x", n);
            auto y = sentinel<double>(n);
            launch(grid, block,
                   [&] { allconv_dropout_f64(x.data(), y.data(), n, key, threshold, scale); });
            write("y", y);
        }
    } else if (k == "sgd_f32" || k == "sgd_f64") {
        need(5);
        const u64 n = parse(a[0]);
        const int decay = (int)parse(a[4]);
        if (k == "sgd_f32") {
            auto w = read<float>("w", n), v = read<float>("v", n);
            const auto g = read<float>("g", n);
            const float lr = f32_bits(a[1]), m = f32_bits(a[2]), wd = f32_bits(a[3]);
            launch(grid, block, [&] {
                allconv_sgd_f32(w.data(), v.data(), g.data(), n, lr, m, wd, decay);
            });
            write("w", w);
            write("v", v);
        } else {
            auto w = read<double>("w", n), v = read<double>("v", n);
            const auto g = read<double>("g", n);
            const double lr = f64_bits(a[1]), m = f64_bits(a[2]), wd = f64_bits(a[3]);
            launch(grid, block, [&] {
                allconv_sgd_f64(w.data(), v.data(), g.data(), n, lr, m, wd, decay);
            });
            write("w", w);
            write("v", v);
        }
    } else {
        fail("unknown kernel " + k);
    }
    return 0;
}
