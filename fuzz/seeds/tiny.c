#include <stdio.h>
#include <unistd.h>
struct node { struct node *next; int id; union { long a; double b; } v; };
enum state { IDLE, RUNNING = 4, DONE };
static __thread int counter;
static struct node head = { 0, 7, { 1 } };
int step(struct node *n, enum state s) { int local = n->id + s; counter += local; return local; }
int main(void) { printf("%d\n", step(&head, RUNNING)); fflush(stdout); pause(); return 0; }
