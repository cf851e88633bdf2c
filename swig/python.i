/*
 * python.i: Python typemaps for rpcnet.i (included from it under SWIGPYTHON).
 * Buffers in use the buffer protocol (bytes, bytearray, memoryview, ...:
 * no copy); buffers out become bytes (one copy) and library buffers are
 * freed with rpcnet_free. The module is built with threads="1": every
 * wrapped call that may block runs with the GIL released (see the
 * "nothread" list in rpcnet.i for the ones that do not).
 */

/* ---- binary-safe input buffers ---- */
%typemap(in) (const void *data, size_t len) (Py_buffer view, int have_view = 0),
             (const void *req, size_t req_len) (Py_buffer view, int have_view = 0),
             (const void *value, size_t len) (Py_buffer view, int have_view = 0) {
  if ($input == Py_None) {
    $1 = NULL;
    $2 = 0;
  } else {
    if (PyObject_GetBuffer($input, &view, PyBUF_SIMPLE) != 0) {
      SWIG_fail;
    }
    have_view = 1;
    $1 = view.buf;
    $2 = (size_t)view.len;
  }
}
%typemap(freearg) (const void *data, size_t len),
                  (const void *req, size_t req_len),
                  (const void *value, size_t len) {
  if (have_view$argnum) PyBuffer_Release(&view$argnum);
}
%typemap(typecheck, precedence=SWIG_TYPECHECK_POINTER) (const void *data, size_t len) {
  $1 = ($input == Py_None || PyObject_CheckBuffer($input)) ? 1 : 0;
}

/* ---- library-allocated buffers out: bytes (or None), freed at once ---- */
%typemap(in, numinputs=0) (void **data, size_t *len) (void *tmp = NULL, size_t tmplen = 0),
                          (void **resp, size_t *resp_len) (void *tmp = NULL, size_t tmplen = 0) {
  $1 = &tmp;
  $2 = &tmplen;
}
%typemap(argout) (void **data, size_t *len), (void **resp, size_t *resp_len) {
  PyObject *o;
  if (*$1) {
    o = PyBytes_FromStringAndSize((const char *)*$1, (Py_ssize_t)*$2);
    rpcnet_free(*$1);
    *$1 = NULL;
    if (!o) SWIG_fail;
  } else {
    o = Py_None;
    Py_INCREF(o);
  }
  $result = SWIG_Python_AppendOutput($result, o);
}
%typemap(freearg) (void **data, size_t *len), (void **resp, size_t *resp_len) {
  /* On an early failure the buffer may still be held. */
  if (tmp$argnum) rpcnet_free(tmp$argnum);
}

/* ---- borrowed library buffers out: copied into bytes (or None) ---- */
%typemap(in, numinputs=0) (const void **borrowed, size_t *borrowed_len)
    (const void *tmp = NULL, size_t tmplen = 0) {
  $1 = &tmp;
  $2 = &tmplen;
}
%typemap(argout) (const void **borrowed, size_t *borrowed_len) {
  PyObject *o;
  if (*$1) {
    o = PyBytes_FromStringAndSize((const char *)*$1, (Py_ssize_t)*$2);
    if (!o) SWIG_fail;
  } else {
    o = Py_None;
    Py_INCREF(o);
  }
  $result = SWIG_Python_AppendOutput($result, o);
}

/* ---- listing entries: rpcnet_request_metadata_at / rpcnet_call_trailer_at
 * return the key; with the value they become (key, value_bytes), or None
 * when the index is past the end. The value is borrowed: copied. ---- */
%typemap(in, numinputs=0) (const void **value, size_t *len)
    (const void *tmp = NULL, size_t tmplen = 0) {
  $1 = &tmp;
  $2 = &tmplen;
}
%typemap(argout) (const void **value, size_t *len) {
  if ($result && $result != Py_None) {
    PyObject *v_, *t_;
    if (*$1) {
      v_ = PyBytes_FromStringAndSize((const char *)*$1, (Py_ssize_t)*$2);
      if (!v_) SWIG_fail;
    } else {
      v_ = Py_None;
      Py_INCREF(v_);
    }
    t_ = PyTuple_Pack(2, $result, v_);
    Py_DECREF(v_);
    if (!t_) SWIG_fail;
    Py_DECREF($result);
    $result = t_;
  }
}

/* ---- status message out ---- */
%typemap(in, numinputs=0) const char **message (const char *tmp = NULL) {
  $1 = &tmp;
}
%typemap(argout) const char **message {
  PyObject *o = PyUnicode_DecodeUTF8(*$1 ? *$1 : "", *$1 ? (Py_ssize_t)strlen(*$1) : 0,
                                     "replace");
  if (!o) SWIG_fail;
  $result = SWIG_Python_AppendOutput($result, o);
}

/* ---- rpcnet_server_next's request out ---- */
%typemap(in, numinputs=0) rpcnet_request **out (rpcnet_request *tmp = NULL) {
  $1 = &tmp;
}
%typemap(argout) rpcnet_request **out {
  $result = SWIG_Python_AppendOutput($result,
      *$1 ? SWIG_NewPointerObj(*$1, $*1_descriptor, 0) : (Py_INCREF(Py_None), Py_None));
}

/* Strings the library returns may hold any bytes a peer sent: never fail
 * decoding them. */
%typemap(out) const char * {
  $result = $1 ? PyUnicode_DecodeUTF8($1, (Py_ssize_t)strlen($1), "replace")
               : (Py_INCREF(Py_None), Py_None);
}

/* int64_t */
%include "stdint.i"
