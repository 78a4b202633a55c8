"""The elementwise activations' formulas, turned into Numba and Cython source.

``codes.ELEMENTWISE`` states each elementwise activation once, as two Python
expressions: the forward ``f(z, alpha)`` and the derivative ``f'(z, a, alpha)``
(``a = f(z)``, for derivatives best written in terms of the output).  This
module writes the compiled backends' code from them:

* ``numba_source`` -- two scalar functions per code, with typed constants and
  branch-free selects, which ``numba/_activations.py`` compiles inline into its
  loops;
* ``cython_rows`` -- the text of ``cython/_elementwise.pxi``, the bodies of
  ``act_forward_row`` and ``act_backward_row``, which ``setup.py`` writes before
  compiling (a test checks that the committed file is this output).

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

# Formula function -> (Numba helper, Cython helper).  The Numba helpers live in
# ``numba/_math.py`` and ``numba/_activations.py``, the Cython ones in
# ``cython/_activations.pxd``; all are float32-accurate and inline.
FUNCTIONS = {
    "exp": ("_exp", "f_exp"),
    "expm1": ("_expm1", "f_expm1"),
    "tanh": ("_tanh", "f_tanh"),
    "sigmoid": ("_sigmoid", "f_sigmoid"),
    "log1p_unit": ("_log1p_unit", "f_log1p_unit"),  # log(1 + u) for 0 <= u <= 1
    "norm_cdf": ("_norm_cdf", "f_norm_cdf"),  # the standard normal CDF
    "abs": ("abs", "f_abs"),
}
_ARITHMETIC = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_COMPARISONS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}


class _Writer:
    """An expression's source for one backend (``"numba"`` or ``"cython"``)."""

    def __init__(self, target, formula, names):
        self.target, self.formula, self.names = target, formula, names
        self.used = set()

    def fail(self, what):
        raise ValueError(f"activation formula {self.formula!r}: {what} is not allowed "
                         f"(see fastnn/_kernels/formulas.py)")

    def write(self, node):
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            value = repr(float(node.value))
            return f"t({value})" if self.target == "numba" else f"(<floating> {value})"
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
            return f"({yes} if {cond} else {no})"
        if isinstance(node, ast.Call):
            if (not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS
                    or len(node.args) != 1 or node.keywords):
                self.fail(f"the call {ast.unparse(node)!r}")
            helper = FUNCTIONS[node.func.id][0 if self.target == "numba" else 1]
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
    """``formula`` as one ``target`` expression and the set of names it reads.
    Numba: ``t`` is the float type of ``z``; Cython: ``zj``/``aj`` are the row's
    elements and ``floating`` the fused type."""
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


def cython_rows(elementwise, names):
    """The text of ``cython/_elementwise.pxi``: ``act_forward_row`` and
    ``act_backward_row`` with one loop per code of ``elementwise`` and softmax
    (``softmax_row`` and its dot-product form, written in ``_activations.pxd``)."""
    used = sorted({names[code] for code in elementwise} | {"SOFTMAX"})
    out = [
        "# cython: language_level=3",
        "# Generated from the formulas in fastnn/_kernels/codes.py by setup.py: edit codes.py, not this file.",
        '"""The activations\' row loops, included by ``_activations.pxd``: one tight loop per code,',
        'chosen once per row, never a switch per element."""',
        f"from ._codes cimport {', '.join(used)}",
        "",
        "",
        "cdef inline void act_forward_row(int act, floating alpha, const floating *z, floating *a,",
        "                                 Py_ssize_t m) noexcept nogil:",
        '    """a := act(z) for one row    # IN z (m,)  OUT a (m,); a may be z."""',
        "    cdef Py_ssize_t j",
        "    cdef floating zj",
        "    if m <= 0:",
        "        return",
        "    if act == SOFTMAX:",
        "        softmax_row(z, a, m)",
    ]
    for code, (forward, _) in elementwise.items():
        out.append(f"    elif act == {names[code]}:  # {forward}")
        if _is_identity(forward):
            out += ["        if a != z:", "            for j in range(m):", "                a[j] = z[j]"]
            continue
        text, _ = expression(forward, "cython")
        out += ["        for j in range(m):", "            zj = z[j]", f"            a[j] = {text}"]
    out += [
        "",
        "",
        "cdef inline void act_backward_row(int act, floating alpha, const floating *z, const floating *a,",
        "                                  const floating *da, floating *dz, Py_ssize_t m) noexcept nogil:",
        '    """dz := da * act\'(z) for one row    # IN z, a, da (m,)  OUT dz (m,); dz may be da."""',
        "    cdef Py_ssize_t j",
        "    cdef floating zj, aj",
        "    if m <= 0:",
        "        return",
        "    if act == SOFTMAX:",
        "        softmax_backward_row(a, da, dz, m)",
    ]
    for code, (_, derivative) in elementwise.items():
        out.append(f"    elif act == {names[code]}:  # {derivative}")
        if _is_one(derivative):
            out += ["        if dz != da:", "            for j in range(m):", "                dz[j] = da[j]"]
            continue
        text, reads = expression(derivative, "cython", derivative=True)
        out.append("        for j in range(m):")
        out += [f"            {local} = {array}[j]" for name, local, array in (("z", "zj", "z"), ("a", "aj", "a"))
                if name in reads]
        out.append(f"            dz[j] = da[j] * {text}")
    return "\n".join(out) + "\n"
