/*
 * An interpreter may dlclose the library after freeing every handle, while
 * the library's I/O threads still run: the library must stay mapped
 * (linked with -z nodelete) rather than crash the process.
 */
#include <dlfcn.h>
#include <unistd.h>

#include "testutil.h"

static void test_dlclose_after_use(void) {
  char path[1200];
  snprintf(path, sizeof path, "%s/capi/librpcnet.so", RPCNET_BINARY_DIR);
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  REQUIRE(h);
  rpcnet_config *(*cfg_new)(void) = (rpcnet_config * (*)(void)) dlsym(h, "rpcnet_config_new");
  int (*cfg_set)(rpcnet_config *, const char *, const char *) =
      (int (*)(rpcnet_config *, const char *, const char *))dlsym(h, "rpcnet_config_set");
  void (*cfg_free)(rpcnet_config *) = (void (*)(rpcnet_config *))dlsym(h, "rpcnet_config_free");
  rpcnet_server *(*srv_new)(const rpcnet_config *) =
      (rpcnet_server * (*)(const rpcnet_config *)) dlsym(h, "rpcnet_server_new");
  int (*srv_listen)(rpcnet_server *, const char *) =
      (int (*)(rpcnet_server *, const char *))dlsym(h, "rpcnet_server_listen");
  void (*srv_free)(rpcnet_server *) = (void (*)(rpcnet_server *))dlsym(h, "rpcnet_server_free");
  REQUIRE(cfg_new && cfg_set && cfg_free && srv_new && srv_listen && srv_free);
  rpcnet_config *cfg = cfg_new();
  cfg_set(cfg, "cert_file", tu_pki("server.pem"));
  cfg_set(cfg, "key_file", tu_pki("server-key.pem"));
  rpcnet_server *srv = srv_new(cfg);
  cfg_free(cfg);
  REQUIRE(srv);
  CHECK_EQ_INT(srv_listen(srv, "127.0.0.1:0"), 0);
  srv_free(srv);
  dlclose(h);
  usleep(300000); /* the I/O thread wakes up meanwhile; it must find its code */
  CHECK(dlopen(path, RTLD_NOW | RTLD_NOLOAD) != NULL); /* still mapped */
}

int main(void) {
  RUN(test_dlclose_after_use);
  return TEST_END();
}
