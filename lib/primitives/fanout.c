/* placeholder */ typedef int cc_placeholder_;
