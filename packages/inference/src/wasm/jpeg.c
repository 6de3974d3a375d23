// Graft's JPEG decoder for the common case: baseline (sequential Huffman, 8-bit) YCbCr with 4:4:4, 4:2:2 or 4:2:0
// sampling in one interleaved scan, no EXIF rotation, no ICC profile, no Adobe marker. It gives the same bytes as
// libjpeg-turbo's default decompression (what sharp/libvips and Pillow give): the accurate integer IDCT
// (jidctint.c), "fancy" triangle upsampling of the chroma (jdsample.c, edge rows and columns replicated as
// jdmainct.c does) and its fixed-point YCbCr -> RGB tables (jdcolor.c). Anything else (and any damaged stream)
// answers "not handled" and the caller decodes with sharp. Built into pixels.wasm by scripts/build-wasm.sh.
#include <stddef.h>
#include <stdint.h>
#include <wasm_simd128.h>

enum { OK = 0, NOT_HANDLED = 1 };

typedef struct {
  uint16_t lookup[512];  // 9-bit lookahead: (length << 8) | value, 0 where the code is longer
  int32_t maxcode[17];   // largest code of each length, -1 where none
  int32_t valptr[17];    // index into values of the first code of each length
  int32_t mincode[17];
  uint8_t values[256];
  int32_t count;      // symbols
  int32_t fast[512];  // AC only: a whole coefficient within 9 bits (see decodeBlock), 0 where not
  uint8_t present;
} Huffman;

typedef struct {
  int32_t id, h, v, tq, td, ta;
  int32_t dc;  // DC predictor
  int32_t stride, rows;  // plane size in samples (whole MCUs)
  int32_t width, height;  // downsampled size (jdiv_round_up(image * samp, max samp))
  uint8_t *plane;
} Component;

static struct {
  const uint8_t *src;
  int32_t len;
  int32_t width, height, restart;
  int32_t hmax, vmax, mcusx, mcusy;
  int32_t scan;  // offset of the entropy-coded data
  int32_t read;  // jpeg_header read an image that jpeg_decode may decode
  Component c[3];
  uint16_t quant[4][64];  // natural order
  uint8_t quantPresent[4];
  Huffman dc[4], ac[4];
} J;

static const uint8_t ZIGZAG[64] = {0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,  12, 19, 26, 33, 40, 48,
                                   41, 34, 27, 20, 13, 6,  7,  14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23,
                                   30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63};

static int32_t u16(const uint8_t *p) { return (p[0] << 8) | p[1]; }
static inline uint8_t clamp255(int32_t v) { return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v; }

static int32_t buildHuffman(Huffman *t, const uint8_t *counts, const uint8_t *values, int32_t n) {
  for (int32_t i = 0; i < 512; i++) t->lookup[i] = 0;
  for (int32_t i = 0; i < n; i++) t->values[i] = values[i];
  t->count = n;
  int32_t code = 0, k = 0;
  for (int32_t len = 1; len <= 16; len++) {
    t->valptr[len] = k;
    t->mincode[len] = code;
    for (int32_t i = 0; i < counts[len - 1]; i++, k++, code++) {
      if (code >= (1 << len)) return NOT_HANDLED;  // more codes than the length allows
      if (len <= 9) {
        int32_t shift = 9 - len;
        for (int32_t j = 0; j < (1 << shift); j++) t->lookup[(code << shift) | j] = (uint16_t)((len << 8) | values[k]);
      }
    }
    t->maxcode[len] = counts[len - 1] ? code - 1 : -1;
    if (code >= (1 << len)) return NOT_HANDLED;  // libjpeg's JERR_BAD_HUFF_TABLE: no all-ones code
    code <<= 1;
  }
  t->present = 1;
  // Fast AC entries: run/size symbols with s > 0 whose code and value bits fit in the 9 looked at.
  for (int32_t i = 0; i < 512; i++) {
    t->fast[i] = 0;
    int32_t e = t->lookup[i];
    if (!e) continue;
    int32_t len = e >> 8, rs = e & 0xFF, run = rs >> 4, size = rs & 15;
    if (size == 0 || len + size > 9) continue;
    int32_t v = (i >> (9 - len - size)) & ((1 << size) - 1);
    v = v < (1 << (size - 1)) ? v - (1 << size) + 1 : v;
    t->fast[i] = (int32_t)((uint32_t)v << 8) | (run << 4) | (len + size - 1);
  }
  return OK;
}

// Orientation of an EXIF block (APP1 payload after "Exif\0\0"): 1 where it names none, 0 where it cannot be read.
static int32_t exifOrientation(const uint8_t *p, int32_t n) {
  if (n < 8) return 0;
  int32_t le = p[0] == 'I' && p[1] == 'I';
  if (!le && !(p[0] == 'M' && p[1] == 'M')) return 0;
#define R16(o) (le ? (p[(o)] | (p[(o) + 1] << 8)) : ((p[(o)] << 8) | p[(o) + 1]))
#define R32(o) (le ? (uint32_t)(p[(o)] | (p[(o) + 1] << 8) | (p[(o) + 2] << 16) | ((uint32_t)p[(o) + 3] << 24)) \
                   : (uint32_t)(((uint32_t)p[(o)] << 24) | (p[(o) + 1] << 16) | (p[(o) + 2] << 8) | p[(o) + 3]))
  uint32_t ifd = R32(4);
  if (ifd > (uint32_t)n - 2) return 0;
  int32_t entries = R16(ifd);
  for (int32_t i = 0; i < entries; i++) {
    uint32_t e = ifd + 2 + 12 * (uint32_t)i;
    if (e + 12 > (uint32_t)n) return 0;
    if (R16(e) == 0x0112) return R16(e + 8);
  }
  return 1;
#undef R16
#undef R32
}

// DQT: quantization tables, kept in natural order.
static int32_t readQuantTables(const uint8_t *p, int32_t n) {
  while (n > 0) {
    int32_t pq = p[0] >> 4, tq = p[0] & 15, bytes = pq ? 128 : 64;
    if (tq > 3 || pq > 1 || n < 1 + bytes) return NOT_HANDLED;
    for (int32_t k = 0; k < 64; k++) {
      int32_t q = pq ? u16(p + 1 + 2 * k) : p[1 + k];
      if (q == 0 || q > 32767) return NOT_HANDLED;  // libjpeg multiplies by it as a short
      J.quant[tq][ZIGZAG[k]] = (uint16_t)q;
    }
    J.quantPresent[tq] = 1;
    p += 1 + bytes;
    n -= 1 + bytes;
  }
  return OK;
}

// DHT: Huffman tables.
static int32_t readHuffmanTables(const uint8_t *p, int32_t n) {
  while (n > 0) {
    if (n < 17) return NOT_HANDLED;
    int32_t tc = p[0] >> 4, th = p[0] & 15, total = 0;
    for (int32_t i = 1; i <= 16; i++) total += p[i];
    if (tc > 1 || th > 3 || total > 256 || n < 17 + total) return NOT_HANDLED;
    if (buildHuffman(tc ? &J.ac[th] : &J.dc[th], p + 1, p + 17, total) != OK) return NOT_HANDLED;
    p += 17 + total;
    n -= 17 + total;
  }
  return OK;
}

// SOF0/SOF1: 8-bit, three components, YCbCr with the luma at 1x1, 2x1 or 2x2 and the chroma at 1x1.
static int32_t readFrame(const uint8_t *p, int32_t n) {
  if (J.width || n < 6 + 9 || p[0] != 8 || p[5] != 3) return NOT_HANDLED;
  J.height = u16(p + 1);
  J.width = u16(p + 3);
  if (J.width == 0 || J.height == 0) return NOT_HANDLED;
  for (int32_t i = 0; i < 3; i++) {
    Component *c = &J.c[i];
    c->id = p[6 + 3 * i];
    c->h = p[7 + 3 * i] >> 4;
    c->v = p[7 + 3 * i] & 15;
    c->tq = p[8 + 3 * i];
    if (c->tq > 3) return NOT_HANDLED;
  }
  // libjpeg reads ids R, G, B as RGB and 1, 0x22, 0x23 as big-gamut YCC: not YCbCr.
  if (J.c[0].id == 'R' && J.c[1].id == 'G' && J.c[2].id == 'B') return NOT_HANDLED;
  if (J.c[0].id == 1 && J.c[1].id == 0x22 && J.c[2].id == 0x23) return NOT_HANDLED;
  if (J.c[1].h != 1 || J.c[1].v != 1 || J.c[2].h != 1 || J.c[2].v != 1) return NOT_HANDLED;
  int32_t h = J.c[0].h, v = J.c[0].v;
  if (!((h == 1 && v == 1) || (h == 2 && v == 1) || (h == 2 && v == 2))) return NOT_HANDLED;
  return OK;
}

// SOS: one interleaved scan of the three components in frame order, the whole spectrum at once.
static int32_t readScan(const uint8_t *p, int32_t n) {
  if (!J.width || n < 1 + 6 + 3 || p[0] != 3) return NOT_HANDLED;
  for (int32_t i = 0; i < 3; i++) {
    Component *c = &J.c[i];
    if (p[1 + 2 * i] != c->id) return NOT_HANDLED;
    c->td = p[2 + 2 * i] >> 4;
    c->ta = p[2 + 2 * i] & 15;
    if (c->td > 3 || c->ta > 3 || !J.dc[c->td].present || !J.ac[c->ta].present || !J.quantPresent[c->tq]) return NOT_HANDLED;
    // libjpeg refuses a DC table the scan uses with a symbol above 15.
    const Huffman *dc = &J.dc[c->td];
    for (int32_t k = 0; k < dc->count; k++)
      if (dc->values[k] > 15) return NOT_HANDLED;
  }
  return p[7] == 0 && p[8] == 63 && p[9] == 0 ? OK : NOT_HANDLED;
}

// APP1 EXIF with a rotation, APP2 ICC profile, APP14 Adobe: sharp would turn or convert the pixels.
static int32_t readApp(int32_t m, const uint8_t *p, int32_t n) {
  if (m == 0xE1 && n >= 6 && p[0] == 'E' && p[1] == 'x' && p[2] == 'i' && p[3] == 'f' && p[4] == 0 && p[5] == 0)
    return exifOrientation(p + 6, n - 6) == 1 ? OK : NOT_HANDLED;
  if (m == 0xE2 && n >= 12 && p[0] == 'I' && p[1] == 'C' && p[2] == 'C' && p[3] == '_') return NOT_HANDLED;
  if (m == 0xEE && n >= 5 && p[0] == 'A' && p[1] == 'd' && p[2] == 'o' && p[3] == 'b' && p[4] == 'e') return NOT_HANDLED;
  return OK;
}

// Reads the markers up to the first scan, then lays out the component planes. OK where the image is one this
// decoder handles.
static int32_t readHeaders(const uint8_t *src, int32_t len) {
  J.src = src;
  J.len = len;
  J.restart = 0;
  J.width = 0;
  for (int32_t i = 0; i < 4; i++) J.quantPresent[i] = J.dc[i].present = J.ac[i].present = 0;
  if (len < 4 || src[0] != 0xFF || src[1] != 0xD8) return NOT_HANDLED;
  for (int32_t pos = 2;;) {
    if (pos + 4 > len || src[pos] != 0xFF) return NOT_HANDLED;
    while (pos < len && src[pos] == 0xFF) pos++;
    if (pos + 3 > len) return NOT_HANDLED;
    int32_t m = src[pos++];
    int32_t size = u16(src + pos);
    if (size < 2 || pos + size > len) return NOT_HANDLED;
    const uint8_t *p = src + pos + 2;
    int32_t n = size - 2, r = OK;
    if (m == 0xDB) r = readQuantTables(p, n);
    else if (m == 0xC4) r = readHuffmanTables(p, n);
    else if (m == 0xC0 || m == 0xC1) r = readFrame(p, n);  // baseline / extended sequential, Huffman
    else if (m >= 0xC2 && m <= 0xCF && m != 0xC8 && m != 0xCC) r = NOT_HANDLED;  // progressive, lossless, arithmetic
    else if (m == 0xDD) r = n < 2 ? NOT_HANDLED : (J.restart = u16(p), OK);  // DRI
    else if (m >= 0xE0 && m <= 0xEF) r = readApp(m, p, n);
    else if (m == 0xD8 || m == 0xD9 || m == 0xDC || (m >= 0xD0 && m <= 0xD7)) r = NOT_HANDLED;
    else if (m == 0xDA) {
      if (readScan(p, n) != OK) return NOT_HANDLED;
      J.scan = pos + size;
      break;
    }
    if (r != OK) return NOT_HANDLED;
    pos += size;
  }
  J.hmax = J.c[0].h;
  J.vmax = J.c[0].v;
  J.mcusx = (J.width + 8 * J.hmax - 1) / (8 * J.hmax);
  J.mcusy = (J.height + 8 * J.vmax - 1) / (8 * J.vmax);
  for (int32_t i = 0; i < 3; i++) {
    Component *c = &J.c[i];
    c->stride = J.mcusx * c->h * 8;
    c->rows = J.mcusy * c->v * 8;
    c->width = (J.width * c->h + J.hmax - 1) / J.hmax;
    c->height = (J.height * c->v + J.vmax - 1) / J.vmax;
  }
  return OK;
}

// ---- entropy decoding ----

// The bit reader lives in locals of decodeScan (these functions inline into it).
typedef struct {
  const uint8_t *src;
  int32_t len, pos;
  uint64_t bits;
  int32_t count;   // valid bits in `bits` (real and zero fill)
  int32_t fill;    // zero bits appended past a marker or the end
  int32_t marker;  // a marker was met: no more data bytes
} Bits;

#define INLINE static inline __attribute__((always_inline))

static __attribute__((noinline)) void fillSlow(Bits *b) {
  while (b->count <= 56) {
    int32_t byte = 0;
    if (!b->marker && b->pos < b->len) {
      byte = b->src[b->pos];
      if (byte == 0xFF) {
        if (b->pos + 1 < b->len && b->src[b->pos + 1] == 0) {
          b->pos += 2;
        } else {
          b->marker = 1;  // stay on the marker's 0xFF
          byte = 0;
        }
      } else {
        b->pos++;
      }
    } else {
      b->marker = 1;
    }
    if (b->marker) b->fill += 8;
    b->bits |= (uint64_t)byte << (56 - b->count);
    b->count += 8;
  }
}

INLINE void fillBits(Bits *b) {
  // Four bytes at once where none of them is 0xFF (a byte of ~w is zero: the bit trick finds a zero byte).
  if (b->count <= 32 && b->pos + 4 <= b->len && !b->marker) {
    uint32_t w;
    __builtin_memcpy(&w, b->src + b->pos, 4);
    const uint32_t x = ~w;
    if (!((x - 0x01010101u) & ~x & 0x80808080u)) {
      b->bits |= (uint64_t)__builtin_bswap32(w) << (32 - b->count);
      b->count += 32;
      b->pos += 4;
    }
  }
  // Whole bytes while none of them is 0xFF (a stuffed byte or a marker): the slow path takes those.
  while (b->count <= 56 && b->pos < b->len) {
    uint32_t byte = b->src[b->pos];
    if (byte == 0xFF || b->marker) break;
    b->bits |= (uint64_t)byte << (56 - b->count);
    b->count += 8;
    b->pos++;
  }
  if (b->count <= 56) fillSlow(b);
}

// n bits (1..16) as a number; the caller checks b->count >= b->fill afterwards.
INLINE int32_t getBits(Bits *b, int32_t n) {
  if (b->count < n) fillBits(b);
  int32_t v = (int32_t)(b->bits >> (64 - n));
  b->bits <<= n;
  b->count -= n;
  return v;
}

static __attribute__((noinline)) int32_t decodeLong(Bits *b, const Huffman *t) {
  int32_t code = (int32_t)(b->bits >> 54);  // 10 bits
  int32_t len = 10;
  while (len <= 16 && code > t->maxcode[len]) code = (int32_t)(b->bits >> (63 - len++));
  if (len > 16) return -1;
  b->bits <<= len;
  b->count -= len;
  return t->values[t->valptr[len] + code - t->mincode[len]];
}

// A symbol, or -1 for a code no table has; the caller checks b->count >= b->fill.
INLINE int32_t decodeSymbol(Bits *b, const Huffman *t) {
  if (b->count < 16) fillBits(b);
  int32_t e = t->lookup[b->bits >> 55];
  if (!e) return decodeLong(b, t);
  b->bits <<= e >> 8;
  b->count -= e >> 8;
  return e & 0xFF;
}

INLINE int32_t extend(int32_t v, int32_t s) { return v < (1 << (s - 1)) ? v + (int32_t)((uint32_t)-1 << s) + 1 : v; }

// Decodes one block's coefficients: -1 for a damaged stream, 0 where only its DC term is non-zero, 1 otherwise.
INLINE int32_t decodeBlock(Bits *b, Component *c, int16_t *coef) {
  int32_t s = decodeSymbol(b, &J.dc[c->td]);
  if (s < 0 || s > 11) return -1;
  if (s) c->dc += extend(getBits(b, s), s);
  for (int32_t i = 1; i < 64; i++) coef[i] = 0;
  const Huffman *ac = &J.ac[c->ta];
  int32_t k = 1;
  for (; k < 64;) {
    if (b->count < 16 + 16) fillBits(b);
    int32_t f = ac->fast[b->bits >> 55];
    if (f) {
      // Code and value bits within the next 9: run in bits 4-7, length in 0-3 (+1), value above.
      k += (f >> 4) & 15;
      if (k > 63) return -1;
      int32_t used = (f & 15) + 1;
      b->bits <<= used;
      b->count -= used;
      coef[ZIGZAG[k]] = (int16_t)(f >> 8);
      k++;
      continue;
    }
    int32_t rs = decodeSymbol(b, ac);
    if (rs < 0) return -1;
    int32_t r = rs >> 4;
    s = rs & 15;
    if (s) {
      k += r;
      if (k > 63) return -1;
      coef[ZIGZAG[k]] = (int16_t)extend(getBits(b, s), s);
      k++;
    } else {
      if (r != 15) break;
      k += 16;
    }
  }
  coef[0] = (int16_t)c->dc;
  if (b->count < b->fill) return -1;
  return k > 1;
}

// ---- jidctint.c's jpeg_idct_islow ----

#define CONST_BITS 13
#define PASS1_BITS 2
#define FIX_0_298631336 2446
#define FIX_0_390180644 3196
#define FIX_0_541196100 4433
#define FIX_0_765366865 6270
#define FIX_0_899976223 7373
#define FIX_1_175875602 9633
#define FIX_1_501321110 12299
#define FIX_1_847759065 15137
#define FIX_1_961570560 16069
#define FIX_2_053119869 16819
#define FIX_2_562915447 20995
#define FIX_3_072711026 25172
#define DESCALE(x, n) (((x) + (1 << ((n)-1))) >> (n))

// jpeg_idct_islow of a block whose AC terms are all zero: every column takes the DC-only shortcut (dequantized DC
// << PASS1_BITS), then every row the zero-row one; the same ranges as idctBlock.
static int32_t idctDc(int32_t dc, uint8_t *out, int32_t stride) {
  if (dc > 32767 || dc < -32767) return NOT_HANDLED;
  int32_t v = DESCALE(dc * (1 << PASS1_BITS), PASS1_BITS + 3);
  if (v < -512 || v > 511) return NOT_HANDLED;
  uint8_t b = clamp255(v + 128);
  for (int32_t row = 0; row < 8; row++)
    for (int32_t i = 0; i < 8; i++) out[row * stride + i] = b;
  return OK;
}


// The same arithmetic four columns (pass 1) or four rows (pass 2) at a time in 32-bit lanes. Before its final
// descale each output is an integer combination of the 8 inputs whose absolute coefficients sum to at most 61,214;
// with every input within +-32767 (checked: the dequantized coefficients, then the workspace) the exact value fits
// in 32 bits, so 32-bit wrapping arithmetic gives it exactly. Blocks outside that take idctIslow.
typedef v128_t V;
#define VMUL(a, k) wasm_i32x4_mul((a), wasm_i32x4_splat(k))
#define VDESCALE(x, n) wasm_i32x4_shr(wasm_i32x4_add((x), wasm_i32x4_splat(1 << ((n)-1))), (n))

INLINE void idct1d(const V *in, V *out, int32_t n) {
  V z2 = in[2], z3 = in[6];
  V z1 = VMUL(wasm_i32x4_add(z2, z3), FIX_0_541196100);
  V tmp2 = wasm_i32x4_add(z1, VMUL(z3, -FIX_1_847759065));
  V tmp3 = wasm_i32x4_add(z1, VMUL(z2, FIX_0_765366865));
  V tmp0 = wasm_i32x4_shl(wasm_i32x4_add(in[0], in[4]), CONST_BITS);
  V tmp1 = wasm_i32x4_shl(wasm_i32x4_sub(in[0], in[4]), CONST_BITS);
  V tmp10 = wasm_i32x4_add(tmp0, tmp3), tmp13 = wasm_i32x4_sub(tmp0, tmp3);
  V tmp11 = wasm_i32x4_add(tmp1, tmp2), tmp12 = wasm_i32x4_sub(tmp1, tmp2);
  tmp0 = in[7];
  tmp1 = in[5];
  tmp2 = in[3];
  tmp3 = in[1];
  z1 = wasm_i32x4_add(tmp0, tmp3);
  z2 = wasm_i32x4_add(tmp1, tmp2);
  z3 = wasm_i32x4_add(tmp0, tmp2);
  V z4 = wasm_i32x4_add(tmp1, tmp3);
  V z5 = VMUL(wasm_i32x4_add(z3, z4), FIX_1_175875602);
  tmp0 = VMUL(tmp0, FIX_0_298631336);
  tmp1 = VMUL(tmp1, FIX_2_053119869);
  tmp2 = VMUL(tmp2, FIX_3_072711026);
  tmp3 = VMUL(tmp3, FIX_1_501321110);
  z1 = VMUL(z1, -FIX_0_899976223);
  z2 = VMUL(z2, -FIX_2_562915447);
  z3 = wasm_i32x4_add(VMUL(z3, -FIX_1_961570560), z5);
  z4 = wasm_i32x4_add(VMUL(z4, -FIX_0_390180644), z5);
  tmp0 = wasm_i32x4_add(tmp0, wasm_i32x4_add(z1, z3));
  tmp1 = wasm_i32x4_add(tmp1, wasm_i32x4_add(z2, z4));
  tmp2 = wasm_i32x4_add(tmp2, wasm_i32x4_add(z2, z3));
  tmp3 = wasm_i32x4_add(tmp3, wasm_i32x4_add(z1, z4));
  out[0] = VDESCALE(wasm_i32x4_add(tmp10, tmp3), n);
  out[7] = VDESCALE(wasm_i32x4_sub(tmp10, tmp3), n);
  out[1] = VDESCALE(wasm_i32x4_add(tmp11, tmp2), n);
  out[6] = VDESCALE(wasm_i32x4_sub(tmp11, tmp2), n);
  out[2] = VDESCALE(wasm_i32x4_add(tmp12, tmp1), n);
  out[5] = VDESCALE(wasm_i32x4_sub(tmp12, tmp1), n);
  out[3] = VDESCALE(wasm_i32x4_add(tmp13, tmp0), n);
  out[4] = VDESCALE(wasm_i32x4_sub(tmp13, tmp0), n);
}

// In place: the 4x4 block a[0..3] (rows) becomes its transpose.
INLINE void transpose4(V *a0, V *a1, V *a2, V *a3) {
  V t0 = wasm_i32x4_shuffle(*a0, *a1, 0, 4, 1, 5), t1 = wasm_i32x4_shuffle(*a0, *a1, 2, 6, 3, 7);
  V t2 = wasm_i32x4_shuffle(*a2, *a3, 0, 4, 1, 5), t3 = wasm_i32x4_shuffle(*a2, *a3, 2, 6, 3, 7);
  *a0 = wasm_i32x4_shuffle(t0, t2, 0, 1, 4, 5);
  *a1 = wasm_i32x4_shuffle(t0, t2, 2, 3, 6, 7);
  *a2 = wasm_i32x4_shuffle(t1, t3, 0, 1, 4, 5);
  *a3 = wasm_i32x4_shuffle(t1, t3, 2, 3, 6, 7);
}

// m[r][g]: row r, columns 4g..4g+3  ->  m[c][h]: column c, rows 4h..4h+3 (an 8x8 transpose).
INLINE void transpose8(V m[8][2]) {
  transpose4(&m[0][0], &m[1][0], &m[2][0], &m[3][0]);
  transpose4(&m[4][1], &m[5][1], &m[6][1], &m[7][1]);
  transpose4(&m[0][1], &m[1][1], &m[2][1], &m[3][1]);
  transpose4(&m[4][0], &m[5][0], &m[6][0], &m[7][0]);
  for (int32_t i = 0; i < 4; i++) {
    V t = m[i][1];
    m[i][1] = m[i + 4][0];
    m[i + 4][0] = t;
  }
}

INLINE V absMax(V acc, V x) { return wasm_i32x4_max(acc, wasm_i32x4_abs(x)); }

// OK, or NOT_HANDLED for a block whose values leave the range where libjpeg-turbo's SIMD IDCT (what sharp runs)
// and its C code agree: dequantized coefficients and the workspace within +-32767, outputs within [-512, 511] before
// the +128 (the SIMD code clamps there, the C code wraps). Only a damaged stream gets there.
static int32_t idctBlock(const int16_t *coef, const uint16_t *q, uint8_t *out, int32_t stride) {
  V m[8][2];
  V big = wasm_i32x4_splat(0);
  for (int32_t r = 0; r < 8; r++) {
    V c = wasm_v128_load(coef + 8 * r), k = wasm_v128_load(q + 8 * r);
    m[r][0] = wasm_i32x4_extmul_low_i16x8(c, k);
    m[r][1] = wasm_i32x4_extmul_high_i16x8(c, k);
    big = absMax(absMax(big, m[r][0]), m[r][1]);
  }
  // Pass 1: columns (lanes), rows as the 8 inputs; then the workspace is transposed for pass 2.
  for (int32_t g = 0; g < 2; g++) {
    V in[8], o[8];
    for (int32_t r = 0; r < 8; r++) in[r] = m[r][g];
    idct1d(in, o, CONST_BITS - PASS1_BITS);
    for (int32_t r = 0; r < 8; r++) {
      m[r][g] = o[r];
      big = absMax(big, o[r]);
    }
  }
  if (wasm_v128_any_true(wasm_i32x4_gt(big, wasm_i32x4_splat(32767)))) return NOT_HANDLED;
  transpose8(m);
  V out512 = wasm_i32x4_splat(0);
  for (int32_t h = 0; h < 2; h++) {
    V in[8], o[8];
    for (int32_t c = 0; c < 8; c++) in[c] = m[c][h];
    idct1d(in, o, CONST_BITS + PASS1_BITS + 3);
    for (int32_t c = 0; c < 8; c++) {
      // Outside [-512, 511] (offset by 512 and seen as unsigned: at least 1024) only a damaged stream goes.
      out512 = wasm_v128_or(out512, wasm_u32x4_ge(wasm_i32x4_add(o[c], wasm_i32x4_splat(512)), wasm_i32x4_splat(1024)));
      m[c][h] = wasm_i32x4_add(o[c], wasm_i32x4_splat(128));
    }
  }
  if (wasm_v128_any_true(out512)) return NOT_HANDLED;
  transpose8(m);
  for (int32_t r = 0; r < 8; r += 2) {
    V a = wasm_i16x8_narrow_i32x4(m[r][0], m[r][1]), b = wasm_i16x8_narrow_i32x4(m[r + 1][0], m[r + 1][1]);
    V bytes = wasm_u8x16_narrow_i16x8(a, b);
    wasm_v128_store64_lane(out + r * stride, bytes, 0);
    wasm_v128_store64_lane(out + (r + 1) * stride, bytes, 1);
  }
  return OK;
}

static int32_t decodeScan(void) {
  Bits b = {J.src, J.len, J.scan, 0, 0, 0, 0};
  for (int32_t i = 0; i < 3; i++) J.c[i].dc = 0;
  int16_t coef[64];
  int32_t left = J.restart, next = 0;
  for (int32_t my = 0; my < J.mcusy; my++) {
    for (int32_t mx = 0; mx < J.mcusx; mx++) {
      if (J.restart && left == 0) {
        // The interval's padding bits are dropped; the marker must be the next RSTn.
        if (b.pos + 1 >= b.len || b.src[b.pos] != 0xFF || b.src[b.pos + 1] != 0xD0 + next) return NOT_HANDLED;
        b.pos += 2;
        b.bits = 0;
        b.count = b.fill = b.marker = 0;
        next = (next + 1) & 7;
        left = J.restart;
        for (int32_t i = 0; i < 3; i++) J.c[i].dc = 0;
      }
      for (int32_t i = 0; i < 3; i++) {
        Component *c = &J.c[i];
        for (int32_t v = 0; v < c->v; v++) {
          for (int32_t h = 0; h < c->h; h++) {
            int32_t kind = decodeBlock(&b, c, coef);
            if (kind < 0) return NOT_HANDLED;
            uint8_t *at = c->plane + (size_t)((my * c->v + v) * 8) * c->stride + (mx * c->h + h) * 8;
            if ((kind ? idctBlock(coef, J.quant[c->tq], at, c->stride) : idctDc(coef[0] * (int32_t)J.quant[c->tq][0], at, c->stride)) != OK)
              return NOT_HANDLED;
          }
        }
      }
      left--;
    }
  }
  // After the scan: only fill bytes, then EOI (the stream ends where libjpeg would stop without warning).
  int32_t pos = b.pos;
  while (pos < b.len && b.src[pos] != 0xFF) pos++;
  while (pos < b.len && b.src[pos] == 0xFF) pos++;
  if (pos >= b.len || b.src[pos] != 0xD9) return NOT_HANDLED;
  return OK;
}

// ---- jdsample.c's fancy upsampling and jdcolor.c's YCbCr -> RGB ----

// jdsample.c's h2v1_fancy_upsample of one row (w > 2 samples).
static void h2v1Row(const uint8_t *in, int32_t w, uint8_t *out) {
  int32_t v = in[0];
  out[0] = (uint8_t)v;
  out[1] = (uint8_t)((v * 3 + in[1] + 2) >> 2);
  for (int32_t x = 1; x < w - 1; x++) {
    v = in[x] * 3;
    out[2 * x] = (uint8_t)((v + in[x - 1] + 1) >> 2);
    out[2 * x + 1] = (uint8_t)((v + in[x + 1] + 2) >> 2);
  }
  v = in[w - 1];
  out[2 * (w - 1)] = (uint8_t)((v * 3 + in[w - 2] + 1) >> 2);
  out[2 * (w - 1) + 1] = (uint8_t)v;
}

// jdsample.c's h2v2_fancy_upsample of one output row (w > 2 samples): in0 the nearest input row, in1 the next
// nearest (above for an even output row, below for an odd one).
static void h2v2Row(const uint8_t *in0, const uint8_t *in1, int32_t w, uint8_t *out) {
  int32_t this = in0[0] * 3 + in1[0], nxt = in0[1] * 3 + in1[1], last;
  out[0] = (uint8_t)((this * 4 + 8) >> 4);
  out[1] = (uint8_t)((this * 3 + nxt + 7) >> 4);
  int32_t x = 1;
  // Eight input columns at a time, while x + 8 is still inside the row.
  const V three = wasm_i16x8_splat(3), eight = wasm_i16x8_splat(8), seven = wasm_i16x8_splat(7);
  for (; x + 8 <= w - 1; x += 8) {
#define COLSUM(o) wasm_i16x8_add(wasm_i16x8_mul(wasm_u16x8_load8x8(in0 + x + (o)), three), wasm_u16x8_load8x8(in1 + x + (o)))
    V prev = COLSUM(-1), cur = wasm_i16x8_mul(COLSUM(0), three), next = COLSUM(1);
#undef COLSUM
    V even = wasm_u16x8_shr(wasm_i16x8_add(wasm_i16x8_add(cur, prev), eight), 4);
    V odd = wasm_u16x8_shr(wasm_i16x8_add(wasm_i16x8_add(cur, next), seven), 4);
    V e = wasm_u8x16_narrow_i16x8(even, even), o = wasm_u8x16_narrow_i16x8(odd, odd);
    wasm_v128_store(out + 2 * x, wasm_i8x16_shuffle(e, o, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23));
  }
  this = in0[x] * 3 + in1[x];
  last = in0[x - 1] * 3 + in1[x - 1];
  for (; x < w - 1; x++) {
    nxt = in0[x + 1] * 3 + in1[x + 1];
    out[2 * x] = (uint8_t)((this * 3 + last + 8) >> 4);
    out[2 * x + 1] = (uint8_t)((this * 3 + nxt + 7) >> 4);
    last = this;
    this = nxt;
  }
  out[2 * (w - 1)] = (uint8_t)((this * 3 + last + 8) >> 4);
  out[2 * (w - 1) + 1] = (uint8_t)((this * 4 + 7) >> 4);
}

// One output row of a chroma plane at full width: h2v1 / h2v2 fancy, or box (each sample twice) where the plane is
// 2 samples wide or less, as jdsample.c chooses.
static void upsampleRow(const Component *c, int32_t y, uint8_t *out) {
  int32_t w = c->width;
  int32_t inrow = J.vmax == 2 ? y >> 1 : y;
  const uint8_t *in = c->plane + (size_t)inrow * c->stride;
  if (J.hmax == 1) {
    for (int32_t x = 0; x < w; x++) out[x] = in[x];
  } else if (w <= 2) {
    for (int32_t x = 0; x < w; x++) out[2 * x] = out[2 * x + 1] = in[x];
  } else if (J.vmax == 1) {
    h2v1Row(in, w, out);
  } else {
    int32_t near = (y & 1) ? inrow + 1 : inrow - 1;  // edge rows repeat (jdmainct.c's context rows)
    if (near < 0) near = 0;
    if (near > c->height - 1) near = c->height - 1;
    h2v2Row(in, c->plane + (size_t)near * c->stride, w, out);
  }
}


// jdcolor.c's YCbCr -> RGB (SCALEBITS 16): R = Y + Cr_r_tab[Cr], G = Y + ((Cb_g_tab[Cb] + Cr_g_tab[Cr]) >> 16),
// B = Y + Cb_b_tab[Cb]; its tables hold these products (with ONE_HALF), so the arithmetic gives the same bytes.
#define CR_R 91881    // FIX(1.40200)
#define CB_B 116130   // FIX(1.77200)
#define CR_G -46802   // -FIX(0.71414)
#define CB_G -22554   // -FIX(0.34414)

// 16 pixels.
INLINE void colour16(const uint8_t *yp, const uint8_t *cbp, const uint8_t *crp, uint8_t *o) {
  V yv = wasm_v128_load(yp), bv = wasm_v128_load(cbp), rv = wasm_v128_load(crp);
  V R[4], G[4], B[4];
  const V c128 = wasm_i32x4_splat(128), half = wasm_i32x4_splat(32768);
#define LANES(v, i) ((i) < 2 ? ((i) == 0 ? wasm_u32x4_extend_low_u16x8(wasm_u16x8_extend_low_u8x16(v)) : wasm_u32x4_extend_high_u16x8(wasm_u16x8_extend_low_u8x16(v))) \
                             : ((i) == 2 ? wasm_u32x4_extend_low_u16x8(wasm_u16x8_extend_high_u8x16(v)) : wasm_u32x4_extend_high_u16x8(wasm_u16x8_extend_high_u8x16(v))))
  for (int32_t i = 0; i < 4; i++) {
    V l = LANES(yv, i), xb = wasm_i32x4_sub(LANES(bv, i), c128), xr = wasm_i32x4_sub(LANES(rv, i), c128);
    R[i] = wasm_i32x4_add(l, wasm_i32x4_shr(wasm_i32x4_add(VMUL(xr, CR_R), half), 16));
    G[i] = wasm_i32x4_add(l, wasm_i32x4_shr(wasm_i32x4_add(wasm_i32x4_add(VMUL(xb, CB_G), half), VMUL(xr, CR_G)), 16));
    B[i] = wasm_i32x4_add(l, wasm_i32x4_shr(wasm_i32x4_add(VMUL(xb, CB_B), half), 16));
  }
#undef LANES
#define BYTES(a) wasm_u8x16_narrow_i16x8(wasm_i16x8_narrow_i32x4(a[0], a[1]), wasm_i16x8_narrow_i32x4(a[2], a[3]))
  V r = BYTES(R), g = BYTES(G), b = BYTES(B);
#undef BYTES
  V rgLo = wasm_i8x16_shuffle(r, g, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  V rgHi = wasm_i8x16_shuffle(r, g, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  wasm_v128_store(o, wasm_i8x16_shuffle(rgLo, b, 0, 1, 16, 2, 3, 17, 4, 5, 18, 6, 7, 19, 8, 9, 20, 10));
  V t = wasm_i8x16_shuffle(rgLo, rgHi, 11, 0, 12, 13, 0, 14, 15, 0, 16, 17, 0, 18, 19, 0, 20, 21);
  wasm_v128_store(o + 16, wasm_i8x16_shuffle(t, b, 0, 21, 2, 3, 22, 5, 6, 23, 8, 9, 24, 11, 12, 25, 14, 15));
  wasm_v128_store(o + 32, wasm_i8x16_shuffle(rgHi, b, 26, 6, 7, 27, 8, 9, 28, 10, 11, 29, 12, 13, 30, 14, 15, 31));
}


// One upsampled chroma row: whole MCUs wide, with room for the 16-byte stores past its end.
static int32_t chromaRowBytes(void) { return J.mcusx * J.hmax * 8 + 32; }

// The image's size, or NOT_HANDLED: info[0] width, info[1] height, info[2] bytes of `work` jpeg_decode needs.
__attribute__((export_name("jpeg_header")))
int32_t jpeg_header(const uint8_t *src, int32_t len, int32_t *info) {
  J.read = 0;
  if (readHeaders(src, len) != OK) return NOT_HANDLED;
  int64_t planes = 0;
  for (int32_t i = 0; i < 3; i++) planes += (int64_t)J.c[i].stride * J.c[i].rows;
  int64_t work = planes + 2 * (int64_t)chromaRowBytes();  // and two upsampled chroma rows
  // sharp's limitInputPixels (0x3FFF * 0x3FFF) refuses larger images; memory for this one stays under 1 GiB.
  if ((int64_t)J.width * J.height > 0x3FFF * 0x3FFF || work + (int64_t)J.width * J.height * 3 > 0x40000000) return NOT_HANDLED;
  info[0] = J.width;
  info[1] = J.height;
  info[2] = (int32_t)work;
  J.read = 1;
  return OK;
}

// Decodes the image jpeg_header has just read (its bytes still where they were) into `out` (width x height x 3 RGB
// bytes), with `work` as jpeg_header asked. OK, or NOT_HANDLED for a stream this decoder does not take (then `out`
// holds nothing of use).
__attribute__((export_name("jpeg_decode")))
int32_t jpeg_decode(uint8_t *work, uint8_t *out) {
  if (!J.read) return NOT_HANDLED;
  J.read = 0;
  uint8_t *at = work;
  for (int32_t i = 0; i < 3; i++) {
    J.c[i].plane = at;
    at += (size_t)J.c[i].stride * J.c[i].rows;
  }
  if (decodeScan() != OK) return NOT_HANDLED;
  uint8_t *cb = at, *cr = at + chromaRowBytes();
  const Component *Y = &J.c[0];
  for (int32_t y = 0; y < J.height; y++) {
    upsampleRow(&J.c[1], y, cb);
    upsampleRow(&J.c[2], y, cr);
    const uint8_t *yr = Y->plane + (size_t)y * Y->stride;
    uint8_t *o = out + (size_t)y * J.width * 3;
    int32_t x = 0;
    for (; x + 16 <= J.width; x += 16) colour16(yr + x, cb + x, cr + x, o + 3 * x);
    for (; x < J.width; x++) {
      int32_t l = yr[x], xb = cb[x] - 128, xr = cr[x] - 128;
      o[3 * x] = clamp255(l + ((CR_R * xr + 32768) >> 16));
      o[3 * x + 1] = clamp255(l + ((CB_G * xb + 32768 + CR_G * xr) >> 16));
      o[3 * x + 2] = clamp255(l + ((CB_B * xb + 32768) >> 16));
    }
  }
  return OK;
}
