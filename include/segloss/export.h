/*
 * segloss/export.h — which declarations libsegloss.so exports.
 *
 * The library is compiled with -fvisibility=hidden: a function is private to
 * the library unless its declaration says otherwise. Every public header
 * opens its declarations with SL_API_BEGIN and closes them with SL_API_END,
 * so a function declared between the two is exported, and one declared
 * anywhere else (src/ internal headers) is not. A new public function needs
 * no marking: declare it in a public header, inside that pair.
 *
 * The pair is a pragma rather than a per-declaration attribute so that the
 * declarations read as plain C; compilers without GCC's visibility pragma
 * (none that build segloss today) get empty macros and export everything.
 */
#ifndef SEGLOSS_EXPORT_H
#define SEGLOSS_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define SL_API_BEGIN _Pragma("GCC visibility push(default)")
#define SL_API_END _Pragma("GCC visibility pop")
#else
#define SL_API_BEGIN
#define SL_API_END
#endif

#endif
