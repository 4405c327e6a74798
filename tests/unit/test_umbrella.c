/* Every public header together in one translation unit: no name clashes,
 * each header self-contained; and the version string. */
#include <string.h>
#include "segloss/segloss.h"
#include "test_util.h"

int main(void)
{
    CHECK(strcmp(sl_version(), SL_VERSION_STRING) == 0, "version %s", sl_version());
    CHECK(sl_loss_catalogue_size() >= 30, "catalogue has %d losses", sl_loss_catalogue_size());
    return test_report("umbrella header");
}
