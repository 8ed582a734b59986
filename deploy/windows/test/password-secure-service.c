/*
 * Wine test fixture only -- never part of the MSI or any Windows install.
 *
 * A stand-in for Password Secure's server and backup services: a real
 * Windows service (its own process, started and stopped by the Service
 * Control Manager) that the agent's `windows_services` steps stop and start
 * under Wine (tests/tests/windows.rs). The test creates it with `sc create`
 * and this command line as its binary path:
 *
 *   password-secure-service.exe NAME LOG [HOLD]
 *
 * NAME is the service's name; each change of state is appended to LOG as
 * "NAME running", "NAME stopping", "NAME stopped", so the test sees the
 * order in which services moved. While the file HOLD exists, a stop request
 * is ignored ("NAME ignored a stop request") and the service stays RUNNING,
 * as a hung service does; once it is gone, the next request stops it.
 * Starting and stopping each take a moment, as a real service's do, so the
 * agent sees START_PENDING and STOP_PENDING.
 *
 *   x86_64-w64-mingw32-gcc -O2 -Wall -Werror -o password-secure-service.exe password-secure-service.c -ladvapi32
 */
#include <windows.h>
#include <stdio.h>
#include <string.h>

static char name[257];
static char log_path[MAX_PATH];
static char hold_path[MAX_PATH];
static SERVICE_STATUS_HANDLE handle;
static SERVICE_STATUS status;
static HANDLE stop_requested;

static void log_line(const char *what)
{
    FILE *log = fopen(log_path, "a");
    if (log) {
        fprintf(log, "%s %s\n", name, what);
        fclose(log);
    }
}

static void report(DWORD state)
{
    status.dwServiceType = SERVICE_WIN32_OWN_PROCESS;
    status.dwCurrentState = state;
    status.dwControlsAccepted = state == SERVICE_RUNNING ? SERVICE_ACCEPT_STOP : 0;
    status.dwWin32ExitCode = NO_ERROR;
    status.dwWaitHint = state == SERVICE_RUNNING || state == SERVICE_STOPPED ? 0 : 5000;
    SetServiceStatus(handle, &status);
}

static DWORD WINAPI on_control(DWORD control, DWORD type, void *data, void *context)
{
    (void)type;
    (void)data;
    (void)context;
    switch (control) {
    case SERVICE_CONTROL_STOP:
        if (hold_path[0] && GetFileAttributesA(hold_path) != INVALID_FILE_ATTRIBUTES) {
            log_line("ignored a stop request");
            return NO_ERROR;
        }
        log_line("stopping");
        report(SERVICE_STOP_PENDING);
        SetEvent(stop_requested);
        return NO_ERROR;
    case SERVICE_CONTROL_INTERROGATE:
        return NO_ERROR;
    default:
        return ERROR_CALL_NOT_IMPLEMENTED;
    }
}

static void WINAPI service_main(DWORD argc, char **argv)
{
    (void)argc;
    (void)argv;
    handle = RegisterServiceCtrlHandlerExA(name, on_control, NULL);
    if (!handle)
        return;
    report(SERVICE_START_PENDING);
    Sleep(400);
    log_line("running");
    report(SERVICE_RUNNING);
    WaitForSingleObject(stop_requested, INFINITE);
    Sleep(400);
    log_line("stopped");
    report(SERVICE_STOPPED);
}

int main(int argc, char **argv)
{
    SERVICE_TABLE_ENTRYA services[] = {{name, service_main}, {NULL, NULL}};
    if (argc < 3 || strlen(argv[1]) >= sizeof name || strlen(argv[2]) >= sizeof log_path
        || (argc > 3 && strlen(argv[3]) >= sizeof hold_path)) {
        fprintf(stderr, "usage: %s NAME LOG [HOLD]\n", argv[0]);
        return 2;
    }
    strcpy(name, argv[1]);
    strcpy(log_path, argv[2]);
    if (argc > 3)
        strcpy(hold_path, argv[3]);
    stop_requested = CreateEventA(NULL, TRUE, FALSE, NULL);
    return StartServiceCtrlDispatcherA(services) ? 0 : 1;
}
