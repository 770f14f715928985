namespace AgentPlatform.Engine.Memory;

/// <summary>A collection of the embedded vector store (<see cref="PostgresVectorStore"/>): its name and vector dimension.</summary>
public sealed class StoredVectorCollection
{
    public string Name { get; set; } = "";
    public int Dimensions { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}

/// <summary>A point of the embedded vector store: the vector scaled to length 1 (real[]), its payload as a JSON object of strings.</summary>
public sealed class StoredVector
{
    public string Collection { get; set; } = "";
    public Guid Id { get; set; }
    public float[] Vector { get; set; } = [];
    public string Payload { get; set; } = "{}";
    public DateTimeOffset CreatedAt { get; set; }
}
