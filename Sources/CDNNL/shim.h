#include <dnnl.h>
// oneDNN's sgemm threads with OpenMP (libgomp); we pin it to one thread and own threading ourselves.
void omp_set_num_threads(int num_threads);
