// Times oneDNN matmul and convolution, float32 and bfloat16 (float32 accumulation and output), on the shapes of
// an SD UNet guided step listed in tools/bench/bf16_shapes.txt (written by tools/bench/unet_shapes.py).
// A measurement tool for issue 16 ("measure oneDNN and our kernel on the shapes that matter"); AnySize does not
// link oneDNN. Threads: OMP_NUM_THREADS (the Debian libdnnl is built with OpenMP). Build and run: run.sh.
//
//   onednn_bench SHAPES_FILE SIZE [min_share_pct=0.5] [min_seconds=0.3] [dtypes=f32,bf16]
//
// Per shape row (share >= min_share_pct of the size's matrix-product FLOPs) and data type, prints one line:
//   size kind dtype threads batch M K N ms_per_exec gflops impl detail
// GEMM roles as in bf16_shapes.txt: linear = activations [M, K] (row-major) x weights [K, N] (laid out by
// oneDNN at load time: format `any`, reordered once, not timed); attn-qk = Q [M, d] x K^T (K stored [N, d]);
// attn-pv = P [M, K] x V [K, N]; conv = NCHW convolution with padding (k-1)/2, every tensor in the layout oneDNN
// picks (`any`, blocked), reorders not timed: the best case for oneDNN. Each shape runs 2 untimed executions,
// then at least 3 and until min_seconds have passed; ms_per_exec is the median. At the end, per data type: the
// FLOP-weighted time of the covered rows x their call counts = the predicted seconds of those matrix products
// in one UNet call, and their effective GFLOP/s.
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <oneapi/dnnl/dnnl.h>

#define CHECK(call)                                                                           \
    do {                                                                                      \
        dnnl_status_t status_ = (call);                                                       \
        if (status_ != dnnl_success) {                                                        \
            fprintf(stderr, "error: %s failed (status %d) at line %d\n", #call, (int)status_, \
                __LINE__);                                                                    \
            exit(1);                                                                          \
        }                                                                                     \
    } while (0)

typedef struct {
    int size;
    char kind[16];
    long batch, m, k, n, count;
    double share;
    char detail[160];
    // conv only
    long cb, cin, cout, h, w, ksize, stride;
} Row;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Fills a memory object with values in [-1, 1): bf16 as the upper half of a float32.
static void fill(dnnl_memory_t mem, dnnl_data_type_t dt, unsigned *seed) {
    const dnnl_memory_desc_t *md;
    void *p;
    CHECK(dnnl_memory_get_memory_desc(mem, &md));
    CHECK(dnnl_memory_get_data_handle(mem, &p));
    size_t bytes = dnnl_memory_desc_get_size(md);
    if (dt == dnnl_f32) {
        float *f = p;
        for (size_t i = 0; i < bytes / 4; i++) f[i] = (float)rand_r(seed) / RAND_MAX * 2.0f - 1.0f;
    } else {
        uint16_t *h = p;
        for (size_t i = 0; i < bytes / 2; i++) {
            float v = (float)rand_r(seed) / RAND_MAX * 2.0f - 1.0f;
            uint32_t u;
            memcpy(&u, &v, 4);
            h[i] = (uint16_t)(u >> 16);
        }
    }
}

static dnnl_memory_t make_memory(const dnnl_memory_desc_t *md, dnnl_engine_t engine, dnnl_data_type_t dt,
    unsigned *seed) {
    dnnl_memory_t mem;
    CHECK(dnnl_memory_create(&mem, md, engine, DNNL_MEMORY_ALLOCATE));
    fill(mem, dt, seed);
    return mem;
}

// Times one row in one data type; returns milliseconds per execution (median), writes the implementation name.
static double time_row(const Row *r, dnnl_data_type_t dt, dnnl_engine_t engine, dnnl_stream_t stream,
    double min_seconds, char *impl, size_t impl_len) {
    unsigned seed = 1234;
    dnnl_primitive_desc_t pd;
    dnnl_memory_desc_t src_md, wei_md, dst_md;
    if (strcmp(r->kind, "conv") == 0) {
        dnnl_dims_t src_dims = {r->cb, r->cin, r->h, r->w};
        dnnl_dims_t wei_dims = {r->cout, r->cin, r->ksize, r->ksize};
        long ho = (r->h + 2 * ((r->ksize - 1) / 2) - r->ksize) / r->stride + 1;
        long wo = (r->w + 2 * ((r->ksize - 1) / 2) - r->ksize) / r->stride + 1;
        dnnl_dims_t dst_dims = {r->cb, r->cout, ho, wo};
        dnnl_dims_t strides = {r->stride, r->stride}, pad = {(r->ksize - 1) / 2, (r->ksize - 1) / 2};
        CHECK(dnnl_memory_desc_init_by_tag(&src_md, 4, src_dims, dt, dnnl_format_tag_any));
        CHECK(dnnl_memory_desc_init_by_tag(&wei_md, 4, wei_dims, dt, dnnl_format_tag_any));
        CHECK(dnnl_memory_desc_init_by_tag(&dst_md, 4, dst_dims, dnnl_f32, dnnl_format_tag_any));
        dnnl_convolution_desc_t desc;
        CHECK(dnnl_convolution_forward_desc_init(&desc, dnnl_forward_inference, dnnl_convolution_direct, &src_md,
            &wei_md, NULL, &dst_md, strides, pad, pad));
        CHECK(dnnl_primitive_desc_create(&pd, &desc, NULL, engine, NULL));
    } else {
        int attention = strncmp(r->kind, "attn", 4) == 0;
        if (attention) {
            dnnl_dims_t a = {r->batch, r->m, r->k}, b = {r->batch, r->k, r->n}, c = {r->batch, r->m, r->n};
            int qk = strcmp(r->kind, "attn-qk") == 0;
            CHECK(dnnl_memory_desc_init_by_tag(&src_md, 3, a, dt, dnnl_abc));
            CHECK(dnnl_memory_desc_init_by_tag(&wei_md, 3, b, dt, qk ? dnnl_acb : dnnl_abc));
            CHECK(dnnl_memory_desc_init_by_tag(&dst_md, 3, c, dnnl_f32, dnnl_abc));
        } else {
            dnnl_dims_t a = {r->m, r->k}, b = {r->k, r->n}, c = {r->m, r->n};
            CHECK(dnnl_memory_desc_init_by_tag(&src_md, 2, a, dt, dnnl_ab));
            CHECK(dnnl_memory_desc_init_by_tag(&wei_md, 2, b, dt, dnnl_format_tag_any));
            CHECK(dnnl_memory_desc_init_by_tag(&dst_md, 2, c, dnnl_f32, dnnl_ab));
        }
        dnnl_matmul_desc_t desc;
        CHECK(dnnl_matmul_desc_init(&desc, &src_md, &wei_md, NULL, &dst_md));
        CHECK(dnnl_primitive_desc_create(&pd, &desc, NULL, engine, NULL));
    }
    const char *name = NULL;
    CHECK(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name));
    snprintf(impl, impl_len, "%s", name ? name : "?");
    dnnl_memory_t src = make_memory(dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), engine, dt, &seed);
    dnnl_memory_t wei = make_memory(dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), engine, dt, &seed);
    dnnl_memory_t dst =
        make_memory(dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0), engine, dnnl_f32, &seed);
    dnnl_primitive_t prim;
    CHECK(dnnl_primitive_create(&prim, pd));
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}};
    for (int i = 0; i < 2; i++) CHECK(dnnl_primitive_execute(prim, stream, 3, args));
    CHECK(dnnl_stream_wait(stream));
    double times[10000];
    int reps = 0;
    double start = now_seconds();
    while (reps < 10000 && (reps < 3 || now_seconds() - start < min_seconds)) {
        double t0 = now_seconds();
        CHECK(dnnl_primitive_execute(prim, stream, 3, args));
        CHECK(dnnl_stream_wait(stream));
        times[reps++] = now_seconds() - t0;
    }
    qsort(times, reps, sizeof(double), cmp_double);
    double median = reps % 2 ? times[reps / 2] : 0.5 * (times[reps / 2 - 1] + times[reps / 2]);
    dnnl_primitive_destroy(prim);
    dnnl_memory_destroy(src);
    dnnl_memory_destroy(wei);
    dnnl_memory_destroy(dst);
    dnnl_primitive_desc_destroy(pd);
    return 1e3 * median;
}

static long field(const char *detail, const char *key) {
    const char *p = strstr(detail, key);
    return p ? strtol(p + strlen(key), NULL, 10) : 0;
}

static const char *isa_name(dnnl_cpu_isa_t isa) {
    switch (isa) {
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx2: return "avx2";
    default: return "other";
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s SHAPES_FILE SIZE [min_share_pct=0.5] [min_seconds=0.3] [dtypes=f32,bf16]\n",
            argv[0]);
        return 2;
    }
    int size = atoi(argv[2]);
    double min_share = argc > 3 ? atof(argv[3]) : 0.5;
    double min_seconds = argc > 4 ? atof(argv[4]) : 0.3;
    const char *dtypes = argc > 5 ? argv[5] : "f32,bf16";
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        fprintf(stderr, "error: cannot read %s (write it with tools/bench/unet_shapes.py)\n", argv[1]);
        return 1;
    }
    static Row rows[512];
    int nrows = 0;
    double total_share = 0;
    char line[512];
    while (fgets(line, sizeof line, f) && nrows < 512) {
        if (line[0] == '#' || line[0] == '\n') continue;
        Row r = {0};
        double gflop;
        char where[128];
        if (sscanf(line, "%d %15s %ld %ld %ld %ld %ld %lf %lf %127s %159s", &r.size, r.kind, &r.batch, &r.m, &r.k,
                &r.n, &r.count, &gflop, &r.share, where, r.detail) != 11)
            continue;
        if (r.size != size || r.share < min_share) continue;
        if (strcmp(r.kind, "conv") == 0) {
            r.cb = field(r.detail, "B=");
            r.cin = field(r.detail, "Cin=");
            r.cout = field(r.detail, "Cout=");
            r.h = field(r.detail, "H=");
            r.w = field(r.detail, "W=");
            r.ksize = field(r.detail, "k=");
            r.stride = field(r.detail, "stride=");
        }
        total_share += r.share;
        rows[nrows++] = r;
    }
    fclose(f);
    if (nrows == 0) {
        fprintf(stderr, "error: no rows for size %d with share >= %.2f%% in %s\n", size, min_share, argv[1]);
        return 1;
    }
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    CHECK(dnnl_engine_create(&engine, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
    const dnnl_version_t *v = dnnl_version();
    int threads = omp_get_max_threads();
    printf("# oneDNN %d.%d.%d, effective ISA %s, %d threads, size %d: %d rows covering %.1f%% of the matrix-product "
           "FLOPs\n",
        v->major, v->minor, v->patch, isa_name(dnnl_get_effective_cpu_isa()), threads, size, nrows, total_share);
    printf("# size kind dtype threads batch M K N ms_per_exec gflops impl detail\n");
    fflush(stdout);
    const char *names[2] = {"f32", "bf16"};
    dnnl_data_type_t types[2] = {dnnl_f32, dnnl_bf16};
    for (int t = 0; t < 2; t++) {
        if (!strstr(dtypes, names[t])) continue;
        double seconds = 0, flops = 0;
        for (int i = 0; i < nrows; i++) {
            const Row *r = &rows[i];
            char impl[128];
            double ms = time_row(r, types[t], engine, stream, min_seconds, impl, sizeof impl);
            double exec_flops = 2.0 * r->batch * r->m * r->k * r->n;
            printf("%d %s %s %d %ld %ld %ld %ld %.3f %.1f %s %s\n", size, r->kind, names[t], threads, r->batch,
                r->m, r->k, r->n, ms, exec_flops / ms / 1e6, impl, r->detail);
            fflush(stdout);
            seconds += r->count * ms / 1e3;
            flops += r->count * exec_flops;
        }
        printf("# total %s %d threads size %d: %.3f s for %.1f GFLOP (%.1f%% of the UNet call's matrix products) = "
               "%.1f GFLOP/s\n",
            names[t], threads, size, seconds, flops / 1e9, total_share, flops / seconds / 1e9);
        fflush(stdout);
    }
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(engine);
    return 0;
}
