using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace AgentPlatform.Engine.Data.Migrations
{
    /// <inheritdoc />
    public partial class WebhookSecrets : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "WebhookSecret",
                table: "api_keys",
                type: "character varying(100)",
                maxLength: 100,
                nullable: true);

            // Keys created before webhooks were signed get a secret too (gen_random_uuid is a CSPRNG in Postgres 13+);
            // their owners learn it by rotating it (POST /admin/keys/{id}/webhook-secret).
            migrationBuilder.Sql("""
                UPDATE api_keys
                SET "WebhookSecret" = 'whsec_' || replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', '')
                WHERE "WebhookSecret" IS NULL
                """);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "WebhookSecret",
                table: "api_keys");
        }
    }
}
