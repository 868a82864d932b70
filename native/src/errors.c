/* Errno names ("ENOSPC") for the helper's messages and JSON: the one place that knows them.
 *
 * glibc >= 2.32 has strerrorname_np. Older ones (RHEL 8: 2.28, Debian 11: 2.31), where the
 * helper must build too (idmapguard_helper_build: host), get the table below: Linux's errno
 * names as glibc 2.36 spells them (one name per number, e.g. EAGAIN not EWOULDBLOCK).
 * tests/native/test_errors.py checks that the table and strerrorname_np agree. */
#define _GNU_SOURCE
#include "errors.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#if defined(__GLIBC__) && defined(__GLIBC_PREREQ)
#if __GLIBC_PREREQ(2, 32) && !defined(IDMAPGUARD_ERRNO_TABLE)
#define HAVE_STRERRORNAME_NP 1
#endif
#endif

#ifndef HAVE_STRERRORNAME_NP
#define N(e) { e, #e },
static const struct {
	int err;
	const char *name;
} errno_names[] = {
	N(EPERM) N(ENOENT) N(ESRCH) N(EINTR) N(EIO) N(ENXIO) N(E2BIG) N(ENOEXEC) N(EBADF)
	N(ECHILD) N(EAGAIN) N(ENOMEM) N(EACCES) N(EFAULT) N(ENOTBLK) N(EBUSY) N(EEXIST)
	N(EXDEV) N(ENODEV) N(ENOTDIR) N(EISDIR) N(EINVAL) N(ENFILE) N(EMFILE) N(ENOTTY)
	N(ETXTBSY) N(EFBIG) N(ENOSPC) N(ESPIPE) N(EROFS) N(EMLINK) N(EPIPE) N(EDOM) N(ERANGE)
	N(EDEADLK) N(ENAMETOOLONG) N(ENOLCK) N(ENOSYS) N(ENOTEMPTY) N(ELOOP) N(ENOMSG) N(EIDRM)
	N(ECHRNG) N(EL2NSYNC) N(EL3HLT) N(EL3RST) N(ELNRNG) N(EUNATCH) N(ENOCSI) N(EL2HLT)
	N(EBADE) N(EBADR) N(EXFULL) N(ENOANO) N(EBADRQC) N(EBADSLT) N(EBFONT) N(ENOSTR)
	N(ENODATA) N(ETIME) N(ENOSR) N(ENONET) N(ENOPKG) N(EREMOTE) N(ENOLINK) N(EADV) N(ESRMNT)
	N(ECOMM) N(EPROTO) N(EMULTIHOP) N(EDOTDOT) N(EBADMSG) N(EOVERFLOW) N(ENOTUNIQ) N(EBADFD)
	N(EREMCHG) N(ELIBACC) N(ELIBBAD) N(ELIBSCN) N(ELIBMAX) N(ELIBEXEC) N(EILSEQ) N(ERESTART)
	N(ESTRPIPE) N(EUSERS) N(ENOTSOCK) N(EDESTADDRREQ) N(EMSGSIZE) N(EPROTOTYPE) N(ENOPROTOOPT)
	N(EPROTONOSUPPORT) N(ESOCKTNOSUPPORT) N(EOPNOTSUPP) N(EPFNOSUPPORT) N(EAFNOSUPPORT)
	N(EADDRINUSE) N(EADDRNOTAVAIL) N(ENETDOWN) N(ENETUNREACH) N(ENETRESET) N(ECONNABORTED)
	N(ECONNRESET) N(ENOBUFS) N(EISCONN) N(ENOTCONN) N(ESHUTDOWN) N(ETOOMANYREFS) N(ETIMEDOUT)
	N(ECONNREFUSED) N(EHOSTDOWN) N(EHOSTUNREACH) N(EALREADY) N(EINPROGRESS) N(ESTALE)
	N(EUCLEAN) N(ENOTNAM) N(ENAVAIL) N(EISNAM) N(EREMOTEIO) N(EDQUOT) N(ENOMEDIUM) N(EMEDIUMTYPE)
	N(ECANCELED) N(ENOKEY) N(EKEYEXPIRED) N(EKEYREVOKED) N(EKEYREJECTED) N(EOWNERDEAD)
	N(ENOTRECOVERABLE) N(ERFKILL) N(EHWPOISON)
};
#undef N

static const char *table_name(int err)
{
	size_t i;
	for (i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++)
		if (errno_names[i].err == err)
			return errno_names[i].name;
	return NULL;
}
#endif

const char *errno_name(int err)
{
	static char buf[16];
	const char *n;
#ifdef HAVE_STRERRORNAME_NP
	n = strerrorname_np(err);
#else
	n = table_name(err);
#endif
	if (n)
		return n;
	snprintf(buf, sizeof(buf), "E%d", err);
	return buf;
}

int errno_name_source_is_table(void)
{
#ifdef HAVE_STRERRORNAME_NP
	return 0;
#else
	return 1;
#endif
}
