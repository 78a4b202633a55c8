"""The elementwise activations' formulas, turned into Numba and Cython source.

``codes.ELEMENTWISE`` states each elementwise activation once, as two Python
expressions: the forward ``f(z, alpha)`` and the derivative ``f'(z, a, alpha)``
(``a = f(z)``, for derivatives best written in terms of the output).  This
module writes the compiled backends' code from them:

* ``numba_source`` -- two scalar functions per code, with typed constants and
  branch-free selects, which ``numba/_activations.py`` compiles inline into its
  loops;
* ``c_rows`` -- the text of ``cython/_elementwise.h``, the C row loops behind the
  Cython backend's ``bias_act_rows`` and ``act_backward_row(s)``, built once per x86
  level, which ``setup.py`` writes before compiling (a test checks that the
  committed file is this output).

The NumPy backend does not use them: it is the reference that the generated
code is tested against.  This module imports nothing from the package, so the
build can run it alone.

A formula may use numbers, ``z``, ``a`` (derivatives only), ``alpha``,
``+ - * /``, unary minus, one comparison (``< <= > >=``), ``x if cond else y``
and the functions of ``FUNCTIONS``; anything else is a ValueError naming the
formula.  Both branches of ``x if cond else y`` are computed (a select, so the
loops vectorize): they must be safe to evaluate for every ``z``.
"""
import ast

# Formula function -> (Numba helper, C helper).  The Numba helpers live in
# ``numba/_math.py`` and ``numba/_activations.py``, the C ones in
# ``cython/_simd_math.h`` (``<name>_f32`` and ``<name>_f64``); all vectorize.
FUNCTIONS = {
    "exp": ("_exp", "fastnn_exp"),
    "expm1": ("_expm1", "fastnn_expm1"),
    "tanh": ("_tanh", "fastnn_tanh"),
    "sigmoid": ("_sigmoid", "fastnn_sigmoid"),
    "log1p_unit": ("_log1p_unit", "fastnn_log1p_unit"),  # log(1 + u) for 0 <= u <= 1
    "norm_cdf": ("_norm_cdf", "fastnn_norm_cdf"),  # the standard normal CDF
    "abs": ("abs", "fastnn_abs"),
}
# The C types, their helpers' suffix and how a constant is written.
_C_TYPES = {"float": ("f32", "{}f"), "double": ("f64", "{}")}
_ARITHMETIC = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_COMPARISONS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}


class _Writer:
    """An expression's source for one backend: ``"numba"``, or C in ``"float"`` or ``"double"``."""

    def __init__(self, target, formula, names):
        self.target, self.formula, self.names = target, formula, names
        self.used = set()

    def fail(self, what):
        raise ValueError(f"activation formula {self.formula!r}: {what} is not allowed "
                         f"(see fastnn/_kernels/formulas.py)")

    def write(self, node):
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            value = repr(float(node.value))
            return f"t({value})" if self.target == "numba" else _C_TYPES[self.target][1].format(value)
        if isinstance(node, ast.Name):
            if node.id not in self.names:
                self.fail(f"the name {node.id!r}")
            self.used.add(node.id)
            return self.names[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
            return f"({self.write(node.left)} {_ARITHMETIC[type(node.op)]} {self.write(node.right)})"
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return f"(-{self.write(node.operand)})"
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARISONS:
            op = _COMPARISONS[type(node.ops[0])]
            return f"({self.write(node.left)} {op} {self.write(node.comparators[0])})"
        if isinstance(node, ast.IfExp):
            cond, yes, no = self.write(node.test), self.write(node.body), self.write(node.orelse)
            if self.target == "numba":
                return f"_select({cond}, {yes}, {no})"
            return f"({cond} ? {yes} : {no})"
        if isinstance(node, ast.Call):
            if (not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS
                    or len(node.args) != 1 or node.keywords):
                self.fail(f"the call {ast.unparse(node)!r}")
            numba_name, c_name = FUNCTIONS[node.func.id]
            helper = numba_name if self.target == "numba" else f"{c_name}_{_C_TYPES[self.target][0]}"
            return f"{helper}({self.write(node.args[0])})"
        self.fail(repr(ast.unparse(node)))


def _parse(formula):
    try:
        return ast.parse(formula, mode="eval").body
    except SyntaxError as exc:
        raise ValueError(f"activation formula {formula!r} is not a Python expression: {exc.msg}") from None


def _is_identity(formula):
    """``z``: the forward pass copies."""
    node = _parse(formula)
    return isinstance(node, ast.Name) and node.id == "z"


def _is_one(formula):
    """A constant 1: the backward pass passes ``da`` through."""
    node = _parse(formula)
    return isinstance(node, ast.Constant) and node.value == 1


def expression(formula, target, derivative=False):
    """``formula`` as one ``target`` expression (``"numba"``, ``"float"`` or
    ``"double"``) and the set of names it reads.  Numba: ``t`` is the float type of
    ``z``; C: ``zj``/``aj`` are the row's elements."""
    names = {"z": "z", "alpha": "alpha"} if target == "numba" else {"z": "zj", "alpha": "alpha"}
    if derivative:
        names["a"] = "a" if target == "numba" else "aj"
    writer = _Writer(target, formula, names)
    return writer.write(_parse(formula)), writer.used


def numba_source(elementwise, names):
    """Python source defining ``forward_<NAME>(z, alpha)`` and
    ``derivative_<NAME>(z, a, alpha)`` for each code of ``elementwise``
    ({code: (forward, derivative)}); ``names[code]`` is the code's name."""
    lines = []
    for code, (forward, derivative) in elementwise.items():
        for kind, formula, params in (("forward", forward, "z, alpha"),
                                      ("derivative", derivative, "z, a, alpha")):
            text, _ = expression(formula, "numba", derivative=kind == "derivative")
            lines += [f"def {kind}_{names[code]}({params}):  # {formula}",
                      "    t = type(z)",
                      f"    return {text}", "", ""]
    return "\n".join(lines)


# x86 levels (see cython/_simd_level.h): suffix, level number, function attribute.
_LEVELS = (("v4", 4, '__attribute__((target("arch=x86-64-v4,prefer-vector-width=512")))'),
           ("v3", 3, '__attribute__((target("arch=x86-64-v3")))'),
           ("v1", 1, ""))


def _c_loops(elementwise, names, softmax, ctype, direction, in_place):
    """The switch over codes of one row body: ``forward`` or ``backward``, out of or in place."""
    sfx = _C_TYPES[ctype][0]
    out = ["    switch (act) {"]
    for code, pair in elementwise.items():
        formula = pair[0] if direction == "forward" else pair[1]
        out.append(f"    case {code}:  /* {names[code]}: {formula} */")
        if direction == "forward" and _is_identity(formula):
            if not in_place:
                out.append("        for (ptrdiff_t j = 0; j < m; j++) a[j] = z[j];")
        elif direction == "backward" and _is_one(formula):
            if not in_place:
                out.append("        for (ptrdiff_t j = 0; j < m; j++) dz[j] = da[j];")
        else:
            text, reads = expression(formula, ctype, derivative=direction == "backward")
            loads = []
            if "z" in reads:
                loads.append(f"{ctype} zj = {'a' if direction == 'forward' and in_place else 'z'}[j];")
            if "a" in reads:
                loads.append(f"{ctype} aj = a[j];")
            if direction == "forward":
                store = f"a[j] = {text};"
            else:
                store = f"dz[j] = {'dz' if in_place else 'da'}[j] * {text};"
            out.append("        for (ptrdiff_t j = 0; j < m; j++) {")
            out.append("            " + " ".join(loads))
            out.append("            " + store)
            out.append("        }")
        out.append("        break;")
    out.append(f"    case {softmax}:  /* {names[softmax]} */")
    if direction == "forward":
        out.append(f"        fastnn_softmax_row_{sfx}({'a' if in_place else 'z'}, a, m);")
    else:
        out.append(f"        fastnn_softmax_backward_row_{sfx}(a, {'dz' if in_place else 'da'}, dz, m);")
    out += ["        break;", "    }"]
    return out


def c_rows(elementwise, names, softmax):
    """The text of ``cython/_elementwise.h``: for float and double (``<t>``: f32, f64)
    and ``n`` rows of ``m`` values, ``fastnn_bias_act_rows_<t>(n, m, b, act, alpha, z,
    a)`` (z += b unless NULL, then a := act(z), row by row; ``a`` is ``z`` or does not
    overlap it) and ``fastnn_act_backward_rows_<t>(n, m, act, alpha, z, a, da, dz)``
    (dz := da * act'(z); ``dz`` is ``da`` or overlaps nothing), and for one row
    ``fastnn_act_backward_<t>(act, alpha, z, a, da, dz, m)``: one loop per code of
    ``elementwise`` and softmax
    (``softmax``, its code), each built once per x86 level and chosen per call
    (``fastnn_act_level``/``fastnn_act_set_level``), not per row."""
    out = [
        "/* Generated from the formulas in fastnn/_kernels/codes.py by setup.py: edit codes.py, not this file.",
        " *",
        " * The activations' row loops for _activations.pxd: one tight loop per activation code, chosen",
        " * once per row, built once per x86 level (_simd_level.h) over the math of _simd_math.h.  An",
        " * unknown code leaves the row as it is.",
        " *",
        " * Design note: this file is long because it is written out -- each activation's loop for two",
        " * dtypes, forward and backward, in and out of place.  Read the formulas in codes.py and the",
        " * writer, c_rows in formulas.py, instead. */",
        "#ifndef FASTNN_ELEMENTWISE_H",
        "#define FASTNN_ELEMENTWISE_H",
        "",
        '#include "_simd_level.h"',
        '#include "_simd_math.h"',
        "",
        "FASTNN_DEFINE_LEVEL(fastnn_act)",
    ]
    for ctype, (sfx, _) in _C_TYPES.items():
        fw = f"int act, {ctype} alpha, const {ctype} *FASTNN_RESTRICT z, {ctype} *FASTNN_RESTRICT a, ptrdiff_t m"
        fw_in = f"int act, {ctype} alpha, {ctype} *FASTNN_RESTRICT a, ptrdiff_t m"
        bw = (f"int act, {ctype} alpha, const {ctype} *FASTNN_RESTRICT z, const {ctype} *FASTNN_RESTRICT a, "
              f"const {ctype} *FASTNN_RESTRICT da, {ctype} *FASTNN_RESTRICT dz, ptrdiff_t m")
        bw_in = (f"int act, {ctype} alpha, const {ctype} *FASTNN_RESTRICT z, const {ctype} *FASTNN_RESTRICT a, "
                 f"{ctype} *FASTNN_RESTRICT dz, ptrdiff_t m")
        for name, params, direction, in_place in (("forward", fw, "forward", False),
                                                  ("forward_in_place", fw_in, "forward", True),
                                                  ("backward", bw, "backward", False),
                                                  ("backward_in_place", bw_in, "backward", True)):
            out += ["", f"FASTNN_MATH void fastnn_act_{name}_body_{sfx}({params}) {{"]
            out += _c_loops(elementwise, names, softmax, ctype, direction, in_place)
            out.append("}")
        for level, _, attribute in _LEVELS:
            if level == "v4":
                out += ["", "#if FASTNN_HAVE_LEVELS  /* GCC >= 12 on x86-64 Linux: the AVX-512 and AVX2 copies */"]
            if level == "v1":
                out += ["#endif"]
            out += [
                "",
                f"{attribute} static void fastnn_act_backward_{sfx}_{level}(int act, {ctype} alpha, "
                f"const {ctype} *z, const {ctype} *a, const {ctype} *da, {ctype} *dz, ptrdiff_t m) {{".lstrip(),
                f"    if (dz == da) fastnn_act_backward_in_place_body_{sfx}(act, alpha, z, a, dz, m);",
                f"    else fastnn_act_backward_body_{sfx}(act, alpha, z, a, da, dz, m);",
                "}",
                f"{attribute} static void fastnn_bias_act_rows_{sfx}_{level}(ptrdiff_t n, ptrdiff_t m, "
                f"const {ctype} *b, int act, {ctype} alpha, {ctype} *z, {ctype} *a) {{".lstrip(),
                "    for (ptrdiff_t i = 0; i < n; i++) {",
                f"        {ctype} *FASTNN_RESTRICT zi = z + i * m;",
                "        if (b != NULL)",
                "            for (ptrdiff_t j = 0; j < m; j++) zi[j] = zi[j] + b[j];",
                f"        if (a == z) fastnn_act_forward_in_place_body_{sfx}(act, alpha, zi, m);",
                f"        else fastnn_act_forward_body_{sfx}(act, alpha, zi, a + i * m, m);",
                "    }",
                "}",
                f"{attribute} static void fastnn_act_backward_rows_{sfx}_{level}(ptrdiff_t n, ptrdiff_t m, int act, "
                f"{ctype} alpha, const {ctype} *z, const {ctype} *a, const {ctype} *da, {ctype} *dz) {{".lstrip(),
                f"    if (act == {softmax}) {{  /* by rows */",
                "        for (ptrdiff_t i = 0; i < n; i++)",
                f"            fastnn_softmax_backward_row_{sfx}(a + i * m, da + i * m, dz + i * m, m);",
                f"    }} else if (dz == da) {{  /* elementwise: the rows as one */",
                f"        fastnn_act_backward_in_place_body_{sfx}(act, alpha, z, a, dz, n * m);",
                "    } else {",
                f"        fastnn_act_backward_body_{sfx}(act, alpha, z, a, da, dz, n * m);",
                "    }",
                "}",
            ]
        for direction, params, args in (
                ("backward", f"int act, {ctype} alpha, const {ctype} *z, const {ctype} *a, const {ctype} *da, "
                             f"{ctype} *dz, ptrdiff_t m", "act, alpha, z, a, da, dz, m"),
                ("bias_act_rows", f"ptrdiff_t n, ptrdiff_t m, const {ctype} *b, int act, {ctype} alpha, "
                                  f"{ctype} *z, {ctype} *a", "n, m, b, act, alpha, z, a"),
                ("backward_rows", f"ptrdiff_t n, ptrdiff_t m, int act, {ctype} alpha, const {ctype} *z, "
                                  f"const {ctype} *a, const {ctype} *da, {ctype} *dz",
                 "n, m, act, alpha, z, a, da, dz")):
            name = direction if direction.startswith("bias") else f"act_{direction}"
            out += ["", f"FASTNN_UNUSED static void fastnn_{name}_{sfx}({params}) {{", "#if FASTNN_HAVE_LEVELS",
                    "    int level = fastnn_act_level();"]
            for level, number, _ in _LEVELS[:-1]:
                out += [f"    if (level == {number}) {{", f"        fastnn_{name}_{sfx}_{level}({args});",
                        "        return;", "    }"]
            out += ["#endif", f"    fastnn_{name}_{sfx}_v1({args});", "}"]
    out += ["", "#endif /* FASTNN_ELEMENTWISE_H */"]
    return "\n".join(out) + "\n"
