// Package cvthreads sets OpenCV's worker thread count, which gocv v0.31
// does not expose. veil budgets cores itself (one detector per worker), so it
// runs OpenCV single-threaded inside each worker.
package cvthreads

/*
#cgo pkg-config: opencv4
#cgo CXXFLAGS: -std=c++11
#include "cvthreads.h"
*/
import "C"

// Set sets cv::setNumThreads(n); n <= 0 restores OpenCV's default.
func Set(n int) { C.veil_set_num_threads(C.int(n)) }

// Get returns cv::getNumThreads().
func Get() int { return int(C.veil_get_num_threads()) }
