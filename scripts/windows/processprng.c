/* For tests under Wine only: Wine 8.0 has no bcryptprimitives.dll, which Rust's standard
 * library (1.78 and later) imports for ProcessPrng; every Rust .exe then fails to load.
 * Windows 10 and later have it. This DLL gives Wine one, taking the bytes from
 * advapi32's RtlGenRandom (SystemFunction036). scripts/windows-test.sh builds it with
 * MinGW into the test prefix's system32; it is never shipped. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
