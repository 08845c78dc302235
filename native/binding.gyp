{
  "targets": [
    {
      "target_name": "burrow_native",
      "sources": ["burrow_native.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
