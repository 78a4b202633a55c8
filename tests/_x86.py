"""The x86 levels a Cython kernel built once per level runs on this CPU (``_simd_level.h``)."""


def levels(set_level):
    """The levels ``set_level`` accepts here (4: AVX-512, 3: AVX2 with FMA, 1: the baseline,
    always), the kernel's setting left as it was.  ``set_level(level)`` returns the level in
    use before and raises ValueError for one the CPU cannot run."""
    found = []
    for level in (1, 3, 4):
        try:
            before = set_level(level)
        except ValueError:
            continue
        set_level(before)
        found.append(level)
    return found
