/*
 * Wine test fixture only -- never part of the MSI or any Windows install.
 *
 * Rust's standard library on Windows draws random bytes from ProcessPrng in
 * bcryptprimitives.dll (Windows 10 and later). Debian 12's Wine 8.0 has no
 * such export, so every Rust program exits at start-up (status 53).
 * scripts/wine-prefix compiles this file into the test prefix's
 * system32/bcryptprimitives.dll: ProcessPrng forwards to advapi32's
 * SystemFunction036 (RtlGenRandom), which Wine does have.
 *
 *   x86_64-w64-mingw32-gcc -shared -O2 -o bcryptprimitives.dll bcryptprimitives.c -ladvapi32
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    /* RtlGenRandom takes a ULONG: fill larger requests in pieces. */
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
