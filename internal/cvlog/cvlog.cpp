#include <opencv2/core/utils/logger.hpp>
#include "cvlog.h"

int veil_cv_set_log_level(int level) {
    return (int)cv::utils::logging::setLogLevel((cv::utils::logging::LogLevel)level);
}

int veil_cv_get_log_level(void) {
    return (int)cv::utils::logging::getLogLevel();
}
