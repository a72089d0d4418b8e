#ifdef __cplusplus
extern "C" {
#endif
void veil_set_num_threads(int n);
int veil_get_num_threads(void);
#ifdef __cplusplus
}
#endif
