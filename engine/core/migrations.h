/* migrations.h — the SQL files of schemas/migrations, embedded at build time in version
 * order (see cmake/embed_migrations.cmake); store.c applies them. */
#ifndef RT_MIGRATIONS_H
#define RT_MIGRATIONS_H

#include <stddef.h>

typedef struct rt_migration {
    int version;
    const char *name;
    const char *sql;
} rt_migration;

extern const rt_migration rt_migrations[];
extern const size_t rt_migrations_count;

#endif
