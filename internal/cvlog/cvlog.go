// Package cvlog sets OpenCV's own log level, which gocv v0.31 does not
// expose. OpenCV reads OPENCV_LOG_LEVEL while the process starts, before
// veil has read its config, so the level is set here at run time instead.
package cvlog

/*
#cgo pkg-config: opencv4
#cgo CXXFLAGS: -std=c++11
#include "cvlog.h"
*/
import "C"

// Level is an OpenCV log level (cv::utils::logging::LogLevel).
type Level int

// The levels veil uses.
const (
	Silent  Level = 0 // nothing
	Warning Level = 3 // OpenCV's default
	Debug   Level = 5
)

// Set sets OpenCV's log level and returns the previous one.
func Set(l Level) Level { return Level(C.veil_cv_set_log_level(C.int(l))) }

// Get returns OpenCV's log level.
func Get() Level { return Level(C.veil_cv_get_log_level()) }
