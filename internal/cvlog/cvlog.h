#ifdef __cplusplus
extern "C" {
#endif
int veil_cv_set_log_level(int level);
int veil_cv_get_log_level(void);
#ifdef __cplusplus
}
#endif
