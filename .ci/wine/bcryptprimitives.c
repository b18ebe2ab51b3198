/* bcryptprimitives.dll for Debian 12's Wine 8.0, which lacks it: Rust's std on Windows takes its
 * random numbers (HashMap keys) from ProcessPrng there, so without this no Rust test starts under
 * that Wine. Built with mingw-w64 into the Wine prefix by `cargo xtask ci`; forwards to
 * RtlGenRandom (advapi32's SystemFunction036), which Wine 8 has. Test scaffolding only: nothing
 * of keystamp links it. */
#include <windows.h>
#define SystemFunction036 NTAPI SystemFunction036
#include <ntsecapi.h>
#undef SystemFunction036

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG chunk = len > 0x7FFFFFFF ? 0x7FFFFFFF : (ULONG)len;
        if (!RtlGenRandom(data, chunk)) return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
