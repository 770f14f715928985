namespace AgentPlatform.Engine.Webhooks;

/// <summary>Binds "Webhooks": where task webhooks may go and how long a delivery may take.</summary>
public sealed class WebhookOptions
{
    public const string SectionName = "Webhooks";

    /// <summary>
    /// Lets webhooks reach loopback and private networks. Off in production: a tenant's URL must not
    /// be able to reach the platform's own network or a cloud metadata service. Tests turn it on to
    /// deliver to a receiver on 127.0.0.1.
    /// </summary>
    public bool AllowPrivateTargets { get; set; }

    /// <summary>Time limit of one delivery attempt: DNS, connect, send, and the receiver's status line.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);
}
