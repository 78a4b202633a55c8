"""Products with a short side, without BLAS (Numba): the same kernel as the
Cython backend's ``_simd_gemm.h``.

``small_gemm(m, n, k, x, sxr, sxc, w, ldw, z, ldz)``: ``z (m, n) := x (m, k)
@ w (k, n)`` on pointers (``pointer(array, offset)``), x's element ``(i, p)``
at ``x[i * sxr + p * sxc]`` (so ``x`` may be a transpose: the weight gradient
``X.T @ dZ`` of a small batch is ``sxr = 1, sxc = n_in``), ``w`` and ``z``
row-major with leading dimensions ``ldw``/``ldz``; strides count elements.

Why: BLAS copies ("packs") ``w`` into blocks for every product, whatever its
rows; for a batch of 8-32 rows times a 784 x 128 weight matrix the copy costs
about as much as the products.  Here, for each block of 3, 2 or 1 vectors of
columns and each group of 4 rows of ``x`` (8 with AVX-512), the 4 x 3 (8 x 3)
sums stay in vector registers while the rows of ``w`` stream past, one load of
``w`` per group.

How: Numba has no vector types, and the same loops written with arrays were
2-3x slower than BLAS (LLVM does not keep an accumulator array in registers).
So each tile shape (``TILE_ROWS`` rows x 1, 2 or 3 vectors) is an ``@intrinsic`` that
emits LLVM IR with explicit vectors (``<16 x float>`` on a CPU with AVX-512,
``<8 x float>`` otherwise: 64 or 32 bytes, ``VECTOR_BYTES``) and
``llvm.fmuladd`` (a fused multiply-add where the CPU has one); the
accumulators are allocas that LLVM's ``mem2reg`` turns into registers.  Each sum adds its ``k`` products in order, as the C kernel does.
A width that is not whole vectors is left to BLAS (``use_small_gemm``;
``_blas.matmul`` and ``matmul_tn`` choose).  A ``w`` of a megabyte or more is
read through a copy of each block of its columns (``packs_w``), as in the
Cython kernel.
"""
from llvmlite import binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.extending import intrinsic

from ._jit import jit, jit_inline


def _vector_bytes():
    """64 where Numba compiles for a CPU with AVX-512 (32 zmm registers hold the
    4 x 3 tile), else 32 (AVX2's 16 ymm registers)."""
    features = config.CPU_FEATURES if config.CPU_FEATURES is not None else llvm.get_host_cpu_features().flatten()
    return 64 if "+avx512f" in str(features).split(",") else 32


VECTOR_BYTES = _vector_bytes()
# Rows of x per tile: with AVX-512's 32 registers, 8 rows x 3 vectors of sums (each
# load of w serves 8 rows), as the Cython kernel; else 4 x 3 in AVX2's 16.
TILE_ROWS = 8 if VECTOR_BYTES == 64 else 4

# A product goes here when its short side -- the rows of x @ w, or the batch rows
# k of a weight gradient -- has at most SMALL_ROWS rows (64 with AVX-512, where
# the 8-row tiles beat one-thread BLAS up to there), or at most NARROW_ROWS for an
# output at most NARROW_WIDTH wide; the same limits as the Cython kernel.
SMALL_ROWS = 64 if VECTOR_BYTES == 64 else 32
# A float32 product of the training loop while BLAS is held at one thread (a batch
# split across threads: a thread's rows forward, all the batch's rows in a weight
# gradient) goes here up to this many rows with AVX-512, as in the Cython loop
# (SMALL_GEMM_ROWS_F32_ONE_THREAD there; docs/performance.md).
SMALL_ROWS_F32_HELD = 256 if VECTOR_BYTES == 64 else SMALL_ROWS
NARROW_WIDTH = 64
NARROW_ROWS = 256


@intrinsic
def pointer(typingctx, a, offset):
    """A pointer to ``a``'s element ``offset`` elements from its data pointer (any layout)."""
    if not (isinstance(a, types.Array) and isinstance(offset, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.gep(data, [context.cast(builder, args[1], signature.args[1], types.intp)])

    return types.CPointer(a.dtype)(a, offset), codegen


@intrinsic
def _lanes(typingctx, p):
    """Elements of ``p``'s dtype in a vector of ``VECTOR_BYTES``, a constant."""
    if not (isinstance(p, types.CPointer) and p.dtype in (types.float32, types.float64)):
        return None
    lanes = VECTOR_BYTES // (4 if p.dtype == types.float32 else 8)

    def codegen(context, builder, signature, args):
        return context.get_constant(types.intp, lanes)

    return types.intp(p), codegen


def _no_unroll(module):
    """``llvm.loop`` metadata that keeps LLVM from unrolling a loop (a loop's id
    node starts with a reference to itself)."""
    disable = module.add_metadata([ir.MetaDataString(module, "llvm.loop.unroll.disable")])
    loop_id = module.add_metadata([disable])
    loop_id.operands = (loop_id, disable)
    return loop_id


def _make_tile(NC, NR):
    """The intrinsic for a tile of NC vectors of columns and NR rows, of which the
    first ``nr`` (1-NR) are stored: a tile of fewer rows computes its last row again
    in the others (one intrinsic per NC, so that Numba compiles 3 and not 3 NR; 4-row
    tiles for the rest of an 8-row grouping measured no faster and no quicker to compile)."""

    @intrinsic
    def tile(typingctx, nr, k, x, xo, sxr, sxc, w, wo, ldw, z, zo, ldz, add):
        if not (isinstance(x, types.CPointer) and x.dtype in (types.float32, types.float64)
                and x == w == z and isinstance(add, types.Boolean)):
            return None
        dtype = z.dtype
        sig = types.void(nr, k, x, xo, sxr, sxc, w, wo, ldw, z, zo, ldz, add)

        def codegen(context, builder, signature, args):
            tys = signature.args
            intp = context.get_value_type(types.intp)
            scalar = context.get_value_type(dtype)
            size = 4 if dtype == types.float32 else 8
            lanes = VECTOR_BYTES // size
            vec = ir.VectorType(scalar, lanes)
            vptr = vec.as_pointer()
            nr_, k_, xo_, sxr_, sxc_, wo_, ldw_, zo_, ldz_ = (
                context.cast(builder, args[i], tys[i], types.intp) for i in (0, 1, 3, 4, 5, 7, 8, 10, 11))
            xp, wp, zp = builder.gep(args[2], [xo_]), builder.gep(args[6], [wo_]), builder.gep(args[9], [zo_])
            name = f"llvm.fmuladd.v{lanes}f{8 * size}"
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec, vec]), name)
            zero = ir.Constant(vec, [0.0] * lanes)
            splat = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
            last = builder.sub(nr_, ir.Constant(intp, 1))
            x_rows, z_rows = [], []  # the NR rows read: the rows past nr read row nr - 1
            for r in range(NR):
                row = ir.Constant(intp, r)
                row = builder.select(builder.icmp_signed("<", row, nr_), row, last)
                x_rows.append(builder.mul(row, sxr_))
                z_rows.append(builder.gep(zp, [builder.mul(row, ldz_)]))
            # the sums start at 0, or (add) at z's (a packed w's chunk after the first)
            acc = []
            for r in range(NR):
                acc.append([])
                for c in range(NC):
                    stored = builder.load(builder.bitcast(builder.gep(z_rows[r], [ir.Constant(intp, c * lanes)]),
                                                          vptr), align=size)
                    acc[r].append(cgutils.alloca_once_value(builder, builder.select(args[12], stored, zero)))
            # for p in range(k), a loop LLVM may not unroll (_no_unroll): the tile is
            # already NR x NC multiply-adds per step, and an unrolled copy would be
            # optimized again in every function that calls small_gemm
            entry = builder.basic_block
            body = builder.append_basic_block("tile.body")
            done = builder.append_basic_block("tile.done")
            builder.cbranch(builder.icmp_signed(">", k_, ir.Constant(intp, 0)), body, done)
            builder.position_at_end(body)
            p = builder.phi(intp)
            p.add_incoming(ir.Constant(intp, 0), entry)
            w_row = builder.gep(wp, [builder.mul(p, ldw_)])
            wv = [builder.load(builder.bitcast(builder.gep(w_row, [ir.Constant(intp, c * lanes)]), vptr),
                               align=size) for c in range(NC)]
            x_col = builder.gep(xp, [builder.mul(p, sxc_)])
            for r in range(NR):
                xs = builder.load(builder.gep(x_col, [x_rows[r]]))
                xv = builder.insert_element(ir.Constant(vec, None), xs, ir.Constant(ir.IntType(32), 0))
                xv = builder.shuffle_vector(xv, ir.Constant(vec, None), splat)
                for c in range(NC):
                    builder.store(builder.call(fma, [xv, wv[c], builder.load(acc[r][c])]), acc[r][c])
            p_next = builder.add(p, ir.Constant(intp, 1))
            p.add_incoming(p_next, builder.basic_block)
            backedge = builder.cbranch(builder.icmp_signed("<", p_next, k_), body, done)
            backedge.set_metadata("llvm.loop", _no_unroll(builder.module))
            builder.position_at_end(done)
            for r in range(NR):
                with cgutils.if_likely(builder, builder.icmp_signed("<", ir.Constant(intp, r), nr_)):
                    z_row = builder.gep(zp, [builder.mul(ir.Constant(intp, r), ldz_)])
                    for c in range(NC):
                        out = builder.bitcast(builder.gep(z_row, [ir.Constant(intp, c * lanes)]), vptr)
                        builder.store(builder.load(acc[r][c]), out).align = size
            return context.get_dummy_value()

        return sig, codegen

    tile.__name__ = f"_tile_{NR}x{NC}"
    return tile


_tile1, _tile2, _tile3 = (_make_tile(nc, TILE_ROWS) for nc in (1, 2, 3))

# With AVX-512 a w of PACK_MIN_BYTES or more, times PACK_MIN_ROWS rows or more, is read
# through a copy of one block of its columns, PACK_ROWS of its rows at a time (24 KB),
# as in the Cython kernel (``_simd_gemm.h``, "Packed"; docs/performance.md, "Wide
# layers"): read in place, a block's lines lie a row of w apart and crowd a few L2 sets.
PACK = VECTOR_BYTES == 64
PACK_MIN_BYTES = 1 << 20
PACK_MIN_ROWS = 16
PACK_ROWS = 128


@intrinsic
def _pack_buffer(typingctx, z):
    """A pointer to PACK_ROWS rows of 3 vectors of ``z``'s dtype on the stack of the
    function that calls this (64-byte aligned)."""
    if not (isinstance(z, types.CPointer) and z.dtype in (types.float32, types.float64)):
        return None

    def codegen(context, builder, signature, args):
        scalar = context.get_value_type(signature.args[0].dtype)
        lanes = VECTOR_BYTES // (4 if signature.args[0].dtype == types.float32 else 8)
        buf = cgutils.alloca_once(builder, scalar, size=context.get_constant(types.intp, PACK_ROWS * 3 * lanes))
        buf.align = 64
        return buf

    return z(z), codegen


@intrinsic
def _copy_block(typingctx, rows, vectors, src, so, lds, dst):
    """dst[p * vectors * lanes + c] := src[so + p * lds + c] for ``rows`` rows of
    ``vectors`` vectors: one vector load and store at a time, in loops LLVM may not
    unroll or vectorize further (this code is optimized again in every caller)."""
    if not (isinstance(src, types.CPointer) and src.dtype in (types.float32, types.float64) and src == dst):
        return None
    sig = types.void(rows, vectors, src, so, lds, dst)

    def codegen(context, builder, signature, args):
        tys = signature.args
        intp = context.get_value_type(types.intp)
        scalar = context.get_value_type(tys[2].dtype)
        size = 4 if tys[2].dtype == types.float32 else 8
        lanes = VECTOR_BYTES // size
        vptr = ir.VectorType(scalar, lanes).as_pointer()
        rows_, vectors_, so_, lds_ = (context.cast(builder, args[i], tys[i], types.intp) for i in (0, 1, 3, 4))
        src_ = builder.gep(args[2], [so_])
        width = builder.mul(vectors_, ir.Constant(intp, lanes))
        with cgutils.for_range(builder, rows_) as row:
            s_row = builder.gep(src_, [builder.mul(row.index, lds_)])
            d_row = builder.gep(args[5], [builder.mul(row.index, width)])
            with cgutils.for_range(builder, vectors_) as vec:
                offset = builder.mul(vec.index, ir.Constant(intp, lanes))
                value = builder.load(builder.bitcast(builder.gep(s_row, [offset]), vptr), align=size)
                builder.store(value, builder.bitcast(builder.gep(d_row, [offset]), vptr)).align = size
        return context.get_dummy_value()

    return sig, codegen


@jit_inline
def packs_w(rows, k, ldw, itemsize):
    """Whether ``small_gemm`` multiplies ``rows`` rows by a copy of w's blocks (a w of
    ``k`` rows, ``ldw`` apart, of ``itemsize``-byte values)."""
    return PACK and rows >= PACK_MIN_ROWS and k * ldw * itemsize >= PACK_MIN_BYTES


@jit
def small_gemm(m, n, k, x, sxr, sxc, w, ldw, z, ldz):
    """z (m x n, row-major, ldz) := x (m x k, element (i, p) at x[i sxr + p sxc]) @ w
    (k x n, ldw), ``n`` whole vectors (``use_small_gemm``).  ``x``, ``w``, ``z`` are
    pointers (``pointer``), so one function per dtype compiles whatever the arrays'
    layouts; the caller checks the bounds.  Each function that calls this one
    re-optimizes its code (Numba links callees into their callers), so it stays
    small: no scalar loop for a last part of a vector, no 12 tile shapes, and the
    packed path (``packs_w``) through the same three tiles as the one in place: a
    packed block's chunks after the first add to the sums stored in z, so each sum
    still adds its k products in order."""
    lanes = _lanes(z)
    packed = packs_w(m, k, ldw, VECTOR_BYTES // lanes)
    chunk = PACK_ROWS if packed else max(k, 1)
    buf = _pack_buffer(z)
    j0 = 0
    while j0 + lanes <= n:
        nc = min(3, (n - j0) // lanes)
        width = nc * lanes
        for k0 in range(0, max(k, 1), chunk):  # k = 0: one pass that stores zeros
            kc = min(chunk, k - k0)
            src, so, ld = w, j0, ldw
            if packed:
                _copy_block(kc, nc, w, k0 * ldw + j0, ldw, buf)
                src, so, ld = buf, 0, width
            add = k0 > 0
            for r0 in range(0, m, TILE_ROWS):
                nr = min(TILE_ROWS, m - r0)
                xo = r0 * sxr + k0 * sxc
                if nc == 3:
                    _tile3(nr, kc, x, xo, sxr, sxc, src, so, ld, z, r0 * ldz + j0, ldz, add)
                elif nc == 2:
                    _tile2(nr, kc, x, xo, sxr, sxc, src, so, ld, z, r0 * ldz + j0, ldz, add)
                else:
                    _tile1(nr, kc, x, xo, sxr, sxc, src, so, ld, z, r0 * ldz + j0, ldz, add)
        j0 += width


@jit_inline
def use_small_gemm(rows, n, itemsize, held=False):
    """Whether a product whose short side has ``rows`` rows and whose output is ``n``
    wide goes to ``small_gemm`` (``n`` whole vectors; see the limits above); ``held``:
    the caller holds BLAS at one thread."""
    most = SMALL_ROWS_F32_HELD if held and itemsize == 4 else SMALL_ROWS
    return n > 0 and n % (VECTOR_BYTES // itemsize) == 0 and (
        rows <= most or (n <= NARROW_WIDTH and rows <= NARROW_ROWS))
