#include <opencv2/core.hpp>
#include "cvthreads.h"

extern "C" void veil_set_num_threads(int n) { cv::setNumThreads(n < 0 ? -1 : n); }
extern "C" int veil_get_num_threads(void) { return cv::getNumThreads(); }
