using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace AgentPlatform.Engine.Data.Migrations
{
    /// <inheritdoc />
    public partial class AgentMemories : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "vector_collections",
                columns: table => new
                {
                    Name = table.Column<string>(type: "character varying(255)", maxLength: 255, nullable: false),
                    Dimensions = table.Column<int>(type: "integer", nullable: false),
                    CreatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_vector_collections", x => x.Name);
                });

            migrationBuilder.CreateTable(
                name: "vector_points",
                columns: table => new
                {
                    Collection = table.Column<string>(type: "character varying(255)", nullable: false),
                    Id = table.Column<Guid>(type: "uuid", nullable: false),
                    Vector = table.Column<float[]>(type: "real[]", nullable: false),
                    Payload = table.Column<string>(type: "jsonb", nullable: false),
                    CreatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_vector_points", x => new { x.Collection, x.Id });
                    table.ForeignKey(
                        name: "FK_vector_points_vector_collections_Collection",
                        column: x => x.Collection,
                        principalTable: "vector_collections",
                        principalColumn: "Name",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "IX_vector_points_Collection_CreatedAt",
                table: "vector_points",
                columns: new[] { "Collection", "CreatedAt" });

            migrationBuilder.CreateIndex(
                name: "IX_vector_points_Payload",
                table: "vector_points",
                column: "Payload")
                .Annotation("Npgsql:IndexMethod", "gin")
                .Annotation("Npgsql:IndexOperators", new[] { "jsonb_path_ops" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "vector_points");

            migrationBuilder.DropTable(
                name: "vector_collections");
        }
    }
}
