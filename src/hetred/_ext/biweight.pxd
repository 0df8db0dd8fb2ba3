# Karl's biwgt on x[0:n] (finite values; sorts x in place): for other kernels to cimport
# (``from hetred._ext.biweight cimport biwgt``). Defined in biweight.pyx.
cdef void biwgt(float* x, Py_ssize_t n, float* loc, float* scale) noexcept nogil
# the same on x[0:n] already sorted ascending (x is not changed)
cdef void biwgt_sorted(const float* x, Py_ssize_t n, float* loc, float* scale) noexcept nogil
