using System.Reflection;
using System.Runtime.InteropServices;

namespace AgentPlatform.Engine.Routing;

/// <summary>
/// Hands the pages of an assembly's large embedded resources back to the kernel once they have been read (MiniLM's model:
/// the package reads ~87 MB out of its assembly into ONNX Runtime, and those file pages then stay resident for good).
/// <c>MADV_PAGEOUT</c> (Linux 5.4+) reclaims a file-backed page, which is read back from the file if it is ever touched
/// again, and never discards data (memory without a backing file stays where it is): safe whatever the runtime mapped the
/// assembly as. Written here because .NET has no API to release part of a loaded assembly's mapping. Elsewhere, or where
/// the call is refused, nothing happens.
/// </summary>
internal static partial class MappedResources
{
    private const int MadvPageout = 21;
    private const long LargeResource = 1 << 20;

    [DllImport("libc", SetLastError = true)]
    private static extern int madvise(nint address, nuint length, int advice);

    /// <returns>The bytes handed back (0 where nothing was done).</returns>
    public static long PageOut(Assembly assembly)
    {
        if (!OperatingSystem.IsLinux()) return 0;
        long released = 0;
        try
        {
            foreach (var name in assembly.GetManifestResourceNames())
            {
                using var stream = assembly.GetManifestResourceStream(name);
                if (stream is not UnmanagedMemoryStream mapped || mapped.Length < LargeResource) continue;
                // Whole pages inside the resource only: its first and last pages may hold other data still in use.
                var page = Environment.SystemPageSize;
                var start = Start(mapped);
                var (first, last) = ((start + page - 1) & ~(nint)(page - 1), (start + (nint)mapped.Length) & ~(nint)(page - 1));
                if (last > first && madvise(first, (nuint)(last - first), MadvPageout) == 0) released += last - first;
            }
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
        }
        return released;
    }

    private static unsafe nint Start(UnmanagedMemoryStream stream) => (nint)stream.PositionPointer;
}
